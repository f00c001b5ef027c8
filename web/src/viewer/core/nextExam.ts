/**
 * Prefetch the next exam of the doctor's list (UX R18), bounded: one study ahead (a new one stops the last), only
 * what the viewer shows first when it opens (the series of its initial layout, ./hanging.ts), stopped by its signal
 * (the viewer went away) and never past the free room of Cornerstone's image cache (so the exam on screen is never
 * evicted for the next one). Metadata and series list are kept for the viewer that opens the study
 * (`takePrefetched`), the decoded images are in the cache: opening it is then a matter of rendering.
 *
 * Built from the viewer's own loading blocks (./series.ts, ./prefetch.ts cacheImages); ./prefetch.ts prefetchStudy
 * decodes every series of a study with no way to stop it or to bound it by the cache.
 */
import { cache } from '@cornerstonejs/core'
import type { DicomJson, SeriesInfo } from './dicomweb'
import { tagNumber } from './dicomweb'
import { initialHanging } from './hanging'
import { initCornerstone } from './init'
import { cacheImages } from './prefetch'
import { isImageSeries, loadSeries, loadSeriesList, type ViewerSeries } from './series'
import { registerSuvProvider } from './suvProvider'
import type { StudyTarget } from '../readingList'

declare global {
  interface Window {
    /** The last next-exam prefetch (diagnostics, the browser tests): its study, images, cached and why it stopped. */
    __teleradNextExam?: NextExamResult & { done: boolean }
  }
}

export interface NextExamResult {
  studyUid: string
  images: number
  cached: number
  /** Why it stopped before the end: the signal, the cache's free room, or an error (no longer visible …). */
  stopped?: 'aborted' | 'cache' | 'error'
}

/** Share of the cache the next exam may fill up to (what is already in it counts). */
export const CACHE_SHARE = 0.9
/** How long prefetched metadata stays good for the viewer that opens the study. */
export const KEEP_MS = 10 * 60_000

interface Ready {
  list: SeriesInfo[]
  series: ViewerSeries[]
  at: number
}

const key = (s: StudyTarget): string => `${s.studyUid}|${s.institution ?? ''}`
const ready = new Map<string, Ready>()
let running: { key: string; abort: AbortController; job: Promise<NextExamResult> } | null = null

/** Decoded size of a series' images in the cache (bytes; 16-bit at least, as the loader keeps them). */
export function estimateBytes(images: { instance: DicomJson }[]): number {
  let n = 0
  for (const { instance: ds } of images) {
    const px = (tagNumber(ds, '00280010') ?? 512) * (tagNumber(ds, '00280011') ?? 512) * (tagNumber(ds, '00280002') ?? 1)
    n += px * Math.max(2, (tagNumber(ds, '00280100') ?? 16) / 8)
  }
  return n
}

/** Whether `bytes` more fit in the cache without evicting what is there. */
export function fitsInCache(bytes: number, used = cache.getCacheSize(), max = cache.getMaxCacheSize()): boolean {
  return used + bytes <= max * CACHE_SHARE
}

/** Prefetch `study` (the one study ahead; a different one already running is stopped). */
export function prefetchNextExam(study: StudyTarget, signal?: AbortSignal): Promise<NextExamResult> {
  const k = key(study)
  if (running && running.key === k && !running.abort.signal.aborted) return running.job
  running?.abort.abort()
  const abort = new AbortController()
  if (signal?.aborted) abort.abort()
  signal?.addEventListener('abort', () => abort.abort(), { once: true })
  const probe = (window.__teleradNextExam = { studyUid: study.studyUid, images: 0, cached: 0, done: false })
  const job = run(study, abort.signal).then((r) => {
    Object.assign(probe, r, { done: true })
    return r
  })
  void job.finally(() => {
    if (running?.job === job) running = null
  })
  running = { key: k, abort, job }
  return job
}

async function run(study: StudyTarget, signal: AbortSignal): Promise<NextExamResult> {
  const out: NextExamResult = { studyUid: study.studyUid, images: 0, cached: 0 }
  try {
    await initCornerstone()
    registerSuvProvider()
    const list = await loadSeriesList(study.studyUid, study.institution, signal)
    const entry: Ready = { list, series: [], at: Date.now() }
    ready.set(key(study), entry)
    const shown = initialHanging(
      list.filter((s) => isImageSeries(s.modality)).map((s) => ({ seriesUid: s.seriesUid, instanceCount: s.instanceCount })),
    )
    const uids = [...new Set(shown.cells.map((c) => c.seriesUid))]
    for (const uid of uids) {
      if (signal.aborted) return { ...out, stopped: 'aborted' }
      const info = list.find((s) => s.seriesUid === uid)!
      const s = await loadSeries(info, study.studyUid, study.institution, signal)
      entry.series.push(s)
      out.images += s.images.length
      if (!fitsInCache(estimateBytes(s.images))) return { ...out, stopped: 'cache' }
      const p = await cacheImages(
        s.images.map((i) => i.imageId),
        undefined,
        signal,
      )
      out.cached += p.done - p.failed
    }
    return signal.aborted ? { ...out, stopped: 'aborted' } : out
  } catch {
    return { ...out, stopped: signal.aborted ? 'aborted' : 'error' }
  }
}

/** The prefetched series list and series of a study, once, for the viewer opening it; null when none (or stale). */
export function takePrefetched(studyUid: string, institution?: string): { list: SeriesInfo[]; series: ViewerSeries[] } | null {
  const k = key({ studyUid, institution })
  const r = ready.get(k)
  ready.delete(k)
  return r && Date.now() - r.at < KEEP_MS ? { list: r.list, series: r.series } : null
}

/** For tests: stop and forget. */
export function resetNextExam(): void {
  running?.abort.abort()
  running = null
  ready.clear()
}
