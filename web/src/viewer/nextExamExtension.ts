/**
 * Next-exam prefetch for every open viewer (UX R18): once the study on screen is fully loaded (the network and the
 * decoder are free), the next study of the list the doctor reads from (./readingList.ts) is prefetched into
 * Cornerstone's cache (./core/nextExam.ts: one study ahead, bounded by the cache); when the list changes (the report
 * window names the next task) it looks again; when the viewer goes away it stops. Light: the prefetching code is
 * loaded with the viewer's chunk. Imported by main.ts.
 */
import { registerViewerExtension, type ViewerContext } from './extensions'
import { nextStudy, onReadingListChange } from './readingList'

export const NEXT_EXAM_EXTENSION = 'next-exam-prefetch'

/** What one viewer does (exported for the tests; `prefetch` is ./core/nextExam.ts prefetchNextExam). */
export function watchNextExam(
  ctx: Pick<ViewerContext, 'studyUid' | 'institution' | 'whenLoaded'>,
  prefetch: (study: { studyUid: string; institution?: string }, signal: AbortSignal) => Promise<unknown>,
): () => void {
  const abort = new AbortController()
  let loaded = false
  let token = 0
  const look = async (): Promise<void> => {
    if (!loaded || abort.signal.aborted) return
    const mine = ++token
    const next = await nextStudy({ studyUid: ctx.studyUid, institution: ctx.institution })
    if (!next || abort.signal.aborted || mine !== token) return
    await prefetch(next, abort.signal)
  }
  const off = onReadingListChange(() => void look())
  void (async () => {
    await (ctx.whenLoaded?.() ?? Promise.resolve())
    loaded = true
    await look()
  })()
  return () => {
    off()
    abort.abort()
  }
}

registerViewerExtension({
  id: NEXT_EXAM_EXTENSION,
  setup(ctx) {
    return watchNextExam(ctx, async (study, signal) => {
      const { prefetchNextExam } = await import('./core/nextExam')
      if (!signal.aborted) await prefetchNextExam(study, signal)
    })
  },
})
