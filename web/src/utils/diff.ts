import { diffChars, diffWordsWithSpace, type Change } from 'diff'

export type DiffKind = 'equal' | 'insert' | 'delete'

export interface DiffPart {
  kind: DiffKind
  text: string
}

const CJK_RE = /[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]/

/**
 * Compare two report texts for the revision trace (TRACE-02). Chinese text
 * has no spaces between words, so it is compared character by character;
 * other text word by word (keeping whitespace). Adjacent parts of the same
 * kind are merged; `null`/`undefined` count as empty.
 */
export function diffText(before: string | null | undefined, after: string | null | undefined): DiffPart[] {
  const a = before ?? ''
  const b = after ?? ''
  if (a === b) return a ? [{ kind: 'equal', text: a }] : []
  const changes: Change[] = CJK_RE.test(a) || CJK_RE.test(b) ? diffChars(a, b) : diffWordsWithSpace(a, b)
  const out: DiffPart[] = []
  for (const c of changes) {
    if (!c.value) continue
    const kind: DiffKind = c.added ? 'insert' : c.removed ? 'delete' : 'equal'
    const last = out[out.length - 1]
    if (last && last.kind === kind) last.text += c.value
    else out.push({ kind, text: c.value })
  }
  return out
}

/** Number of inserted and deleted characters, for a short summary. */
export function diffStats(parts: DiffPart[]): { inserted: number; deleted: number } {
  let inserted = 0
  let deleted = 0
  for (const p of parts) {
    if (p.kind === 'insert') inserted += Array.from(p.text).length
    if (p.kind === 'delete') deleted += Array.from(p.text).length
  }
  return { inserted, deleted }
}
