/**
 * Template markers and phrases in the report editor's textareas (issue 17; REQ: RPT-03, RPT-07; UX R5, R6, R7).
 *
 * - Tab / Shift+Tab in a report textarea select the next / previous `[A/B]` choice or `___` blank, across the
 *   fields in order (wrapping); with none left, Tab moves the focus as usual.
 * - With a choice selected, keys 1..9 pick its option; typing over a selected blank fills it.
 * - `/` at the start of a line or after a space opens the phrase search (the caller shows PhraseSearch);
 *   Ctrl+1..9 inserts the user's phrase with that shortcut.
 * - The last caret in a report field is remembered for the template panel's 插入.
 *
 * The caller registers `handlers` in its `report-editor` key scope. Edits go through the textarea
 * (execCommand insertText, so Ctrl+Z undoes them; a plain value + input event where that is missing), so the
 * form sees them exactly like typing.
 */
import { nextTick, reactive, ref } from 'vue'
import { ElMessage } from 'element-plus'
import { B, CHOICE_BINDINGS, PHRASE_BINDINGS, type KeyHandler } from '@/keymap'
import { REPORT_TEXT_FIELDS, listPhrases, type Cursor, type Phrase, type ReportTextField, type ReportTexts } from '@/api/templates'
import { i18n } from '@/i18n'
import { adjacentMarker, markerAt, opensPhraseSearch, type Caret } from '@/components/report/markers'

export interface TemplateEditingOptions {
  /** The element holding the report form. */
  root: () => HTMLElement | null | undefined
  /** False while the report is read-only (lock not held). */
  enabled: () => boolean
  /** Replace the report's texts and positive (a template applied); the form re-renders from it. */
  setReport: (report: ReportTexts) => void
}

/**
 * The real <textarea> of a report field: Element Plus puts the data-testid either on the textarea itself or on
 * the el-input wrapper, depending on its version.
 */
export function fieldTextarea(root: ParentNode | null | undefined, field: string): HTMLTextAreaElement | null {
  if (!root) return null
  const el = root.querySelector<HTMLElement>(`[data-testid="form-input-${field}"]`)
  if (!el) return null
  if (el instanceof HTMLTextAreaElement) return el
  return el.querySelector('textarea')
}

/** Put `value` over [start, end) of a textarea as if typed, and select [selStart, selEnd) afterwards. */
export function replaceInTextarea(ta: HTMLTextAreaElement, start: number, end: number, value: string, selStart?: number, selEnd?: number): void {
  ta.focus()
  ta.setSelectionRange(start, end)
  const expected = ta.value.slice(0, start) + value + ta.value.slice(end)
  let done = false
  try {
    // Keeps the browser's undo stack; jsdom and old engines lack it (returns false or throws).
    done = typeof document.execCommand === 'function' && document.execCommand('insertText', false, value)
  } catch {
    done = false
  }
  if (!done || ta.value !== expected) {
    ta.value = expected
    ta.dispatchEvent(new Event('input', { bubbles: true }))
  }
  const caret = start + value.length
  ta.setSelectionRange(selStart ?? caret, selEnd ?? selStart ?? caret)
}

export function useTemplateEditing(opts: TemplateEditingOptions) {
  const lastCaret = ref<Caret<ReportTextField> | null>(null)
  const phrases = ref<Phrase[]>([])
  /** The phrase search popup: open, and where the phrase goes. */
  const phraseSearch = reactive<{ open: boolean; at: Caret<ReportTextField> | null }>({ open: false, at: null })

  const textarea = (f: ReportTextField) => fieldTextarea(opts.root(), f)

  function fieldOf(target: EventTarget | null): ReportTextField | null {
    if (!(target instanceof HTMLTextAreaElement)) return null
    for (const f of REPORT_TEXT_FIELDS) if (textarea(f) === target) return f
    return null
  }

  function caretOf(target: EventTarget | null): Caret<ReportTextField> | null {
    const f = fieldOf(target)
    if (!f) return null
    const ta = target as HTMLTextAreaElement
    return { field: f, start: ta.selectionStart, end: ta.selectionEnd }
  }

  function texts(): Record<ReportTextField, string> {
    const out = {} as Record<ReportTextField, string>
    for (const f of REPORT_TEXT_FIELDS) out[f] = textarea(f)?.value ?? ''
    return out
  }

  /** Remember the caret of a report field (focusout/keyup/mouseup/select of the form call this). */
  function track(e: Event): void {
    const c = caretOf(e.target)
    if (c) lastCaret.value = c
  }

  /** Focus a field and select [start, end) (waits for the form to render a new value first). */
  async function focusField(field: ReportTextField, start: number, end = start): Promise<void> {
    await nextTick()
    await nextTick()
    const ta = textarea(field)
    if (!ta) return
    ta.focus()
    const len = ta.value.length
    ta.setSelectionRange(Math.min(start, len), Math.min(end, len))
    lastCaret.value = { field, start: Math.min(start, len), end: Math.min(end, len) }
  }

  /** Back to the editor: the last caret, else the start of 影像所见. */
  function focusEditor(): void {
    const c = lastCaret.value
    void focusField(c?.field ?? 'findings', c?.start ?? 0, c?.end ?? c?.start ?? 0)
  }

  /** Insert text at a caret (or the last one, else the end of 影像所见) as if typed. */
  function insertText(value: string, at: Caret<ReportTextField> | null = lastCaret.value): void {
    if (!opts.enabled()) return
    const field = at?.field ?? 'findings'
    const ta = textarea(field)
    if (!ta) return
    const start = at ? Math.min(at.start, ta.value.length) : ta.value.length
    const end = at ? Math.min(at.end, ta.value.length) : ta.value.length
    replaceInTextarea(ta, start, end, value)
    lastCaret.value = { field, start: start + value.length, end: start + value.length }
  }

  /** The cursor the template panel's 插入 uses. */
  function cursor(): Cursor | null {
    const c = lastCaret.value
    return c ? { field: c.field, offset: c.start } : null
  }

  /** A template applied by the panel: the new texts, then the caret where the insert began (or 影像所见's start). */
  async function applyReport(report: ReportTexts, caret: Cursor | null): Promise<void> {
    opts.setReport(report)
    await focusField(caret?.field ?? 'findings', caret?.offset ?? 0)
  }

  function selectMarker(dir: 1 | -1, e: KeyboardEvent): boolean {
    if (!opts.enabled()) return false
    const at = caretOf(e.target)
    if (!at) return false
    const m = adjacentMarker(texts(), REPORT_TEXT_FIELDS, at, dir)
    if (!m) return false
    const ta = textarea(m.field)
    if (!ta) return false
    ta.focus()
    ta.setSelectionRange(m.start, m.end)
    lastCaret.value = { field: m.field, start: m.start, end: m.end }
    return true
  }

  function choose(k: number, e: KeyboardEvent): boolean {
    if (!opts.enabled()) return false
    const at = caretOf(e.target)
    if (!at) return false
    const ta = e.target as HTMLTextAreaElement
    const m = markerAt(ta.value, at.start, at.end)
    if (!m || m.kind !== 'choice' || !m.options[k - 1]) return false
    replaceInTextarea(ta, m.start, m.end, m.options[k - 1])
    lastCaret.value = { field: at.field, start: ta.selectionStart, end: ta.selectionEnd }
    return true
  }

  async function loadPhrases(): Promise<void> {
    try {
      phrases.value = await listPhrases()
    } catch {
      phrases.value = [] // the interceptor told the user; shortcuts then say there is no phrase
    }
  }

  function phraseShortcut(k: number, e: KeyboardEvent): boolean {
    if (!opts.enabled()) return false
    const at = caretOf(e.target)
    if (!at) return false
    const p = phrases.value.find((x) => x.shortcut === k)
    if (!p) {
      ElMessage.info({ message: i18n.global.t('templates.noPhraseShortcut', { n: k }), grouping: true })
      return true
    }
    insertText(p.text, at)
    return true
  }

  function openPhraseSearch(e: KeyboardEvent): boolean {
    if (!opts.enabled()) return false
    const at = caretOf(e.target)
    if (!at || at.start !== at.end) return false
    const ta = e.target as HTMLTextAreaElement
    if (!opensPhraseSearch(ta.value, at.start)) return false
    lastCaret.value = at
    phraseSearch.at = at
    phraseSearch.open = true
    return true
  }

  /** The popup chose a phrase (or null: closed without one); the focus goes back to the editor. */
  function closePhraseSearch(p: Phrase | null): void {
    const at = phraseSearch.at
    phraseSearch.open = false
    phraseSearch.at = null
    if (p) {
      insertText(p.text, at)
    } else if (at) {
      void focusField(at.field, at.start, at.end)
    }
  }

  const handlers: Record<string, KeyHandler> = {
    [B.reportNextMarker.id]: (e) => selectMarker(1, e),
    [B.reportPrevMarker.id]: (e) => selectMarker(-1, e),
    [B.reportPhraseSearch.id]: (e) => openPhraseSearch(e),
  }
  CHOICE_BINDINGS.forEach((b, i) => (handlers[b.id] = (e) => choose(i + 1, e)))
  PHRASE_BINDINGS.forEach((b, i) => (handlers[b.id] = (e) => phraseShortcut(i + 1, e)))

  return {
    handlers,
    lastCaret,
    phrases,
    phraseSearch,
    track,
    textarea,
    texts,
    cursor,
    focusField,
    focusEditor,
    insertText,
    applyReport,
    loadPhrases,
    closePhraseSearch,
  }
}

export type TemplateEditing = ReturnType<typeof useTemplateEditing>
