// UX R18 — the next exam of the list the doctor reads from is prefetched: the list handed over by the opener, the
// study after the one shown (looked up lazily, items without images skipped), started only once the shown study is
// loaded, again when the list changes, stopped when the viewer goes away.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { clearReadingList, nextStudy, setReadingList } from '../readingList'
import { watchNextExam } from '../nextExamExtension'
import { studyItems, studyKey } from '../listSources'

vi.mock('@/viewer/sync/reportLink', () => ({ studyForTask: vi.fn() }))
vi.mock('../openStudy', () => ({ findCaseStudies: vi.fn() }))

afterEach(() => clearReadingList())

const A = { studyUid: '1.2.1', institution: 'M01' }
const B = { studyUid: '1.2.2', institution: 'M01' }
const C = { studyUid: '1.2.3', institution: 'M02' }
const tick = () => new Promise((r) => setTimeout(r, 0))

describe('ux_r18 reading list', () => {
  it('gives the study after the one shown, resolving items lazily and skipping those without a study', async () => {
    const lookups: string[] = []
    const lazy = (key: string, s: typeof A | null) => ({
      key,
      resolve: async () => {
        lookups.push(key)
        return s
      },
    })
    setReadingList([lazy('task:1', A), lazy('task:2', null), lazy('task:3', C)], 'task:1', A)
    expect(await nextStudy(A)).toEqual(C)
    expect(lookups).toEqual(['task:2', 'task:3']) // the current one was known from the opener
    expect(await nextStudy(C)).toBeNull() // the end of the list
  })

  it('the imaging list: rows are studies; no list, no next', async () => {
    expect(await nextStudy(A)).toBeNull()
    const rows = [A, B, C].map((s) => ({ study_instance_uid: s.studyUid, institution: { code: s.institution } }))
    setReadingList(studyItems(rows), studyKey(B.studyUid))
    expect(await nextStudy(B)).toEqual(C)
    expect(await nextStudy(A)).toEqual(B) // found by its study, wherever the opener started
  })
})

describe('ux_r18 next-exam prefetch of a viewer', () => {
  it('starts once the shown study is loaded, follows list changes and stops when the viewer goes away', async () => {
    let loaded!: () => void
    const whenLoaded = () => new Promise<void>((r) => (loaded = r))
    const prefetch = vi.fn(async (_s: unknown, _signal: AbortSignal) => undefined)
    setReadingList(studyItems([A, B].map((s) => ({ study_instance_uid: s.studyUid, institution: { code: s.institution } }))), studyKey(A.studyUid))
    const stop = watchNextExam({ ...A, whenLoaded }, prefetch)
    await tick()
    expect(prefetch).not.toHaveBeenCalled() // the shown study first
    loaded()
    await tick()
    await tick()
    expect(prefetch).toHaveBeenCalledTimes(1)
    expect(prefetch.mock.calls[0][0]).toEqual(B)
    const signal = prefetch.mock.calls[0][1]
    expect(signal.aborted).toBe(false)

    // the report window names another next exam: prefetched instead
    setReadingList([{ key: 'shown', study: A }, { key: 'next', study: C }], 'shown')
    await tick()
    await tick()
    expect(prefetch).toHaveBeenCalledTimes(2)
    expect(prefetch.mock.calls[1][0]).toEqual(C)

    stop() // the viewer went away (navigation): the prefetch is told to stop, and list changes are ignored
    expect(signal.aborted).toBe(true)
    setReadingList([{ key: 'shown', study: A }, { key: 'next', study: B }], 'shown')
    await tick()
    expect(prefetch).toHaveBeenCalledTimes(2)
  })

  it('does nothing for the last exam of the list', async () => {
    const prefetch = vi.fn(async () => undefined)
    setReadingList([{ key: 'a', study: A }], 'a')
    const stop = watchNextExam({ ...A, whenLoaded: async () => undefined }, prefetch)
    await tick()
    await tick()
    expect(prefetch).not.toHaveBeenCalled()
    stop()
  })
})
