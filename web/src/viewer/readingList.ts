/**
 * The list a doctor is reading from (UX R18 "the next exam in the worklist is prefetched"): whoever opens the viewer
 * from a list — 我的任务, the case list, the imaging list, the report page's 下一个任务 — hands over that list in its
 * order; the viewer (./nextExamExtension.ts) asks for the study after the one it shows and prefetches it. A list
 * item knows its study (the imaging list) or looks it up when asked (a task or case: its exam's linked study).
 * One list per window, kept in memory (a reload forgets it: prefetching is a comfort, never needed).
 */

export interface StudyTarget {
  studyUid: string
  institution?: string
}

export interface ReadingItem {
  /** Unique within the list, e.g. `task:12`, `study:1.2.3`. */
  key: string
  study?: StudyTarget | null
  /** Looks the study up (once; the answer is kept). */
  resolve?: () => Promise<StudyTarget | null>
}

interface ReadingList {
  items: ReadingItem[]
  current: string
}

let list: ReadingList | null = null
const listeners = new Set<() => void>()

/** How many items after the current one are looked at for one with images (a task without a study is skipped). */
export const LOOK_AHEAD = 3

function changed(): void {
  for (const cb of listeners) cb()
}

/** The opener's list, in its order, and the item being opened. */
export function setReadingList(items: ReadingItem[], currentKey: string, currentStudy?: StudyTarget | null): void {
  list = { items: items.map((i) => ({ ...i })), current: currentKey }
  const cur = list.items.find((i) => i.key === currentKey)
  if (cur && currentStudy) cur.study = currentStudy
  changed()
}

export function clearReadingList(): void {
  list = null
  changed()
}

/** Called whenever the list changes (a viewer looks for its next exam again). */
export function onReadingListChange(cb: () => void): () => void {
  listeners.add(cb)
  return () => listeners.delete(cb)
}

async function studyOf(item: ReadingItem): Promise<StudyTarget | null> {
  if (item.study !== undefined) return item.study
  if (!item.resolve) return null
  try {
    item.study = await item.resolve()
  } catch {
    item.study = null
  }
  return item.study
}

const same = (a: StudyTarget | null | undefined, b: StudyTarget): boolean =>
  !!a && a.studyUid === b.studyUid && (a.institution ?? '') === (b.institution ?? '')

/**
 * The study after `shown` in the list: `shown` is found as the item whose study it is, else taken to be the current
 * item; the next item (of LOOK_AHEAD) with a study other than `shown`. Null without a list or past its end.
 */
export async function nextStudy(shown: StudyTarget): Promise<StudyTarget | null> {
  const l = list
  if (!l) return null
  let at = l.items.findIndex((i) => same(i.study, shown))
  if (at < 0) at = l.items.findIndex((i) => i.key === l.current)
  if (at < 0) return null
  for (const item of l.items.slice(at + 1, at + 1 + LOOK_AHEAD)) {
    const s = await studyOf(item)
    if (list !== l) return null // replaced meanwhile
    if (s && s.studyUid !== shown.studyUid) return s
  }
  return null
}
