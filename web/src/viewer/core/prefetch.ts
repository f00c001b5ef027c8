/**
 * Decode whole series into Cornerstone's image cache (REQ: VIEW-01, UX R18): the displayed series with a progress
 * bar, and the next exam of the worklist ahead of time (`prefetchStudy`). Decoding runs in the image loader's web
 * workers; a small number of requests are kept in flight so the first image is never queued behind the rest.
 * The frames themselves come in a few bulk requests per series (bulk.ts), read while the images are decoded; a frame
 * the bulk requests do not bring is fetched alone.
 */
import { cache, imageLoader } from '@cornerstonejs/core'
import { fetchBulk, installBulkLoader, releaseFrame } from './bulk'
import { initCornerstone } from './init'
import { loadSeries, loadSeriesList, type ViewerSeries } from './series'

export interface CacheProgress {
  done: number
  total: number
  failed: number
  /** Sum of the loader's fetch and decode times (ms) of the images this run loaded. */
  fetchMs: number
  decodeMs: number
}

export const IN_FLIGHT = 8
/** At most one progress report per this many ms (and the last one always): each report re-renders the series
 * browser's progress bars, main-thread work that took ~0.6 s (plus layout, paint, commit) of a 1,000-slice CT's
 * loading when it ran per image (issue 16; the main thread is what limits the loading). */
export const PROGRESS_EVERY_MS = 100

interface LoadedImage {
  loadTimeInMS?: number
  decodeTimeInMS?: number
}

/**
 * Load every image id into the cache (`first` ones first), calling `onProgress` after each. Resolves when all are
 * done (failures counted, not thrown). `signal` stops queuing further images.
 */
export async function cacheImages(
  imageIds: string[],
  onProgress?: (p: CacheProgress) => void,
  signal?: AbortSignal,
): Promise<CacheProgress> {
  const p: CacheProgress = { done: 0, total: imageIds.length, failed: 0, fetchMs: 0, decodeMs: 0 }
  installBulkLoader()
  // the images not loaded nor being loaded (the viewport's current image is already on its way)
  const bulk = fetchBulk(
    imageIds.filter((id) => !cache.getImageLoadObject(id)),
    signal,
  )
  let next = 0
  let reported = 0
  const report = () => {
    const now = performance.now()
    if (p.done < p.total && now - reported < PROGRESS_EVERY_MS) return
    reported = now
    onProgress?.(p)
  }
  const worker = async () => {
    while (next < imageIds.length && !signal?.aborted) {
      const id = imageIds[next++]
      if (cache.isLoaded(id)) {
        releaseFrame(id)
        p.done++
      } else {
        try {
          const img = (await imageLoader.loadAndCacheImage(id)) as LoadedImage
          p.fetchMs += img.loadTimeInMS ?? 0
          p.decodeMs += img.decodeTimeInMS ?? 0
          p.done++
        } catch {
          p.failed++
          p.done++
        }
      }
      report()
    }
  }
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, imageIds.length) }, worker))
  if (reported === 0 || p.done < p.total) onProgress?.(p) // stopped early (aborted): where it got to
  await bulk
  return p
}

const prefetched = new Map<string, Promise<ViewerSeries[]>>()

/**
 * Prefetch a study for the worklist's next exam (UX R18): its series metadata and every image decoded into the
 * cache. Safe to call repeatedly; errors (e.g. no longer visible) are swallowed — prefetching is comfort.
 */
export function prefetchStudy(studyUid: string, institution?: string): Promise<ViewerSeries[]> {
  const key = `${studyUid}|${institution ?? ''}`
  let job = prefetched.get(key)
  if (!job) {
    job = (async () => {
      await initCornerstone()
      const list = await loadSeriesList(studyUid, institution)
      const series: ViewerSeries[] = []
      for (const info of list) {
        const s = await loadSeries(info, studyUid, institution)
        series.push(s)
        await cacheImages(s.images.map((i) => i.imageId))
      }
      return series
    })().catch(() => {
      prefetched.delete(key)
      return []
    })
    prefetched.set(key, job)
  }
  return job
}
