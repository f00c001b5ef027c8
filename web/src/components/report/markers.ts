/**
 * Template markers in report text (issue 17; REQ: RPT-03, RPT-07; UX R5): `[A/B/C]` is a choice whose first option
 * is the default, `___` (three or more underscores) is a blank. Both are plain text; the editor tabs through them
 * (Tab / Shift+Tab, wrapping across the report's fields in order), keys 1..9 pick a choice's option and typing over
 * a selected blank fills it. Pure functions: the composable useTemplateEditing applies them to the textareas.
 */

export interface ChoiceMarker {
  kind: 'choice'
  start: number
  end: number
  options: string[]
}

export interface BlankMarker {
  kind: 'blank'
  start: number
  end: number
}

export type Marker = ChoiceMarker | BlankMarker

export type FieldMarker<F extends string = string> = Marker & { field: F }

/** A caret or selection inside one field. */
export interface Caret<F extends string = string> {
  field: F
  start: number
  end: number
}

/** The text after an edit and where the caret goes. */
export interface Edit {
  text: string
  caret: number
}

// A choice: "[" option ("/" option)+ "]", options without brackets, slashes or line breaks. A blank: 3+ underscores.
const MARKER_RE = /\[([^[\]/\n]+(?:\/[^[\]/\n]+)+)\]|_{3,}/g

/** Every marker of `text`, in order. */
export function findMarkers(text: string): Marker[] {
  const out: Marker[] = []
  for (const m of text.matchAll(MARKER_RE)) {
    const start = m.index ?? 0
    const end = start + m[0].length
    if (m[1] !== undefined) out.push({ kind: 'choice', start, end, options: m[1].split('/').map((o) => o.trim()) })
    else out.push({ kind: 'blank', start, end })
  }
  return out
}

/** How many markers the fields still hold (submit is blocked while any remain, UX R5). */
export function countMarkers<F extends string>(texts: Readonly<Partial<Record<F, string | null>>>, fields: readonly F[]): number {
  return fields.reduce((n, f) => n + findMarkers(texts[f] ?? '').length, 0)
}

/** The marker a selection covers exactly (or the choice a collapsed caret stands inside), else null. */
export function markerAt(text: string, start: number, end: number): Marker | null {
  for (const m of findMarkers(text)) {
    if (m.start === start && m.end === end) return m
    if (start === end && m.kind === 'choice' && start > m.start && start < m.end) return m
  }
  return null
}

function withField<F extends string>(field: F, m: Marker): FieldMarker<F> {
  return { ...m, field }
}

/**
 * The marker after (dir 1) or before (dir -1) the caret, looking through the fields in order and wrapping around.
 * A selected marker counts as passed, so repeated calls walk every marker. A caret outside the report fields
 * (`at` null or an unknown field) starts before the first field (dir 1) or after the last one (dir -1).
 * Null when no field holds a marker.
 */
export function adjacentMarker<F extends string>(
  texts: Readonly<Partial<Record<F, string | null>>>,
  fields: readonly F[],
  at: Caret<F> | null,
  dir: 1 | -1,
): FieldMarker<F> | null {
  const per = fields.map((f) => findMarkers(texts[f] ?? ''))
  if (!per.some((list) => list.length)) return null
  const n = fields.length
  const fi = at ? fields.indexOf(at.field) : -1
  if (fi < 0) {
    const order = dir === 1 ? fields.map((_, i) => i) : fields.map((_, i) => n - 1 - i)
    for (const i of order) {
      const list = per[i]
      if (list.length) return withField(fields[i], dir === 1 ? list[0] : list[list.length - 1])
    }
    return null
  }
  const cur = per[fi]
  if (dir === 1) {
    const here = cur.find((m) => m.start >= at!.end)
    if (here) return withField(fields[fi], here)
    for (let k = 1; k < n; k++) {
      const i = (fi + k) % n
      if (per[i].length) return withField(fields[i], per[i][0])
    }
    // wrapped back to the caret's own field: its first marker (it lies before the caret)
    return withField(fields[fi], cur[0])
  }
  const before = cur.filter((m) => m.end <= at!.start)
  if (before.length) return withField(fields[fi], before[before.length - 1])
  for (let k = 1; k < n; k++) {
    const i = (fi - k + n) % n
    if (per[i].length) return withField(fields[i], per[i][per[i].length - 1])
  }
  return withField(fields[fi], cur[cur.length - 1])
}

/** Replace a choice with its option `k` (1-based); null when it has no such option. */
export function chooseOption(text: string, marker: ChoiceMarker, k: number): Edit | null {
  const option = marker.options[k - 1]
  if (option === undefined) return null
  return { text: text.slice(0, marker.start) + option + text.slice(marker.end), caret: marker.start + option.length }
}

/** Replace a blank with `value`. */
export function fillBlank(text: string, marker: BlankMarker, value: string): Edit {
  return { text: text.slice(0, marker.start) + value + text.slice(marker.end), caret: marker.start + value.length }
}

/** Insert `value` over the selection [start, end). */
export function insertAt(text: string, start: number, end: number, value: string): Edit {
  return { text: text.slice(0, start) + value + text.slice(end), caret: start + value.length }
}

/** True when a `/` typed at `offset` opens the phrase search: at the start of a line or after a space (UX R6). */
export function opensPhraseSearch(text: string, offset: number): boolean {
  if (offset <= 0) return true
  const prev = text[offset - 1]
  return prev === '\n' || prev === ' ' || prev === '\u3000' || prev === '\t'
}
