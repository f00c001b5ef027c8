/**
 * Start fetching a study's series list and its first series' metadata as soon as the router decides to show the
 * viewer — while the viewer's JavaScript (Cornerstone3D, a few MB) is still downloading and compiling (UX R18: the
 * first image fast). Kept free of Cornerstone imports so it can live in the main bundle.
 */
import { takeBootSeries } from './bootBridge'
import { type DicomJson, type SeriesInfo, searchSeries, seriesMetadata, toSeriesList } from './dicomweb'

interface Early {
  series: Promise<SeriesInfo[]>
  firstMetadata: Promise<{ seriesUid: string; instances: DicomJson[] } | null>
  at: number
}

const early = new Map<string, Early>()
const key = (studyUid: string, institution?: string) => `${studyUid}|${institution ?? ''}`

export function fetchEarly(studyUid: string, institution?: string): void {
  const k = key(studyUid, institution)
  if (early.has(k)) return
  // the boot preview's QIDO answer when it asked already (web/src/boot/preview.ts); asked again when it failed, so
  // that a refusal reaches the viewer as a DicomwebError
  const boot = takeBootSeries(studyUid, institution)
  const series = boot
    ? boot.series.then(toSeriesList, () => searchSeries(studyUid, institution))
    : searchSeries(studyUid, institution)
  const firstMetadata = series.then(async (list) => {
    const taken = boot ? await boot.firstMetadata : null
    if (taken) return taken
    const first = list[0]
    return first ? { seriesUid: first.seriesUid, instances: await seriesMetadata(studyUid, first.seriesUid, institution) } : null
  })
  // failures are reported by the viewer when it asks again; keep unhandled rejections quiet here
  series.catch(() => undefined)
  firstMetadata.catch(() => undefined)
  early.set(k, { series, firstMetadata, at: Date.now() })
}

/** The early fetch of this study, once (a later visit fetches afresh); null when none is pending or it is stale. */
export function takeEarly(studyUid: string, institution?: string): Early | null {
  const k = key(studyUid, institution)
  const e = early.get(k) ?? null
  early.delete(k)
  return e && Date.now() - e.at < 30_000 ? e : null
}
