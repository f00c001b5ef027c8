/**
 * The viewer's side of the boot preview (web/src/boot/preview.ts; issue 16, UX R18): reuse its series list, carry
 * its paint time into the viewer's stats, and end it when the diagnostic image is on screen (or when it cannot be
 * the image the viewer shows). Talks to it through `window.__teleradPreview` only, so neither chunk pulls in the other.
 */
import type { BootPreview } from '@/boot/previewTypes'
import type { DicomJson } from './dicomweb'
import { loadPaletteBulk } from './palette'
import type { ViewerStats } from './stats'

/** The live preview of this study (same institution choice), or null. */
export function bootPreview(studyUid: string, institution?: string): BootPreview | null {
  const p = typeof window !== 'undefined' ? window.__teleradPreview : undefined
  if (!p || p.studyUid !== studyUid || (p.institution ?? '') !== (institution ?? '')) return null
  return p
}

/** The series list and first series' metadata the boot module already asked for (once: a later visit asks
 * afresh), or null. */
export function takeBootSeries(
  studyUid: string,
  institution?: string,
): {
  series: Promise<DicomJson[]>
  firstMetadata: Promise<{ seriesUid: string; instances: DicomJson[] } | null>
} | null {
  const p = bootPreview(studyUid, institution)
  if (!p || p.seriesTaken) return null
  p.seriesTaken = true
  return {
    series: p.series as Promise<DicomJson[]>,
    // palette tables over 1 KB come as BulkDataURIs, fetched before the image loader reads the metadata
    firstMetadata: (p.firstMetadata as Promise<{ seriesUid: string; instances: DicomJson[] } | null>).then(async (m) => {
      if (m) await loadPaletteBulk(m.instances)
      return m
    }),
  }
}

/** A new viewer's stats start from the preview's paint time when the preview of this study is still on screen (not
 * for a viewer opened again later in the same page). */
export function adoptPreview(stats: ViewerStats, studyUid: string, institution?: string): void {
  const p = bootPreview(studyUid, institution)
  if (p && !p.ended && p.paintedAt !== null && stats.firstImageMs === null) stats.firstImageMs = p.paintedAt
}

/** Cornerstone rendered `sopUid` for the first time: both figures, and the preview goes. */
export function diagnosticRendered(stats: ViewerStats, now: number): void {
  if (stats.firstDiagnosticImageMs !== null) return
  stats.firstDiagnosticImageMs = now
  if (stats.firstImageMs === null) stats.firstImageMs = now
  endPreview('replaced')
}

/** The first image the viewer will show: when it is another instance than the preview's, the preview goes now. */
export function expectFirstImage(studyUid: string, institution: string | undefined, sopUid: string): void {
  const p = bootPreview(studyUid, institution)
  if (p && p.sopUid && p.sopUid !== sopUid) p.end('other-image')
}

export function endPreview(reason: string): void {
  window.__teleradPreview?.end(reason)
}

/**
 * Wait (at most `capMs`) for this study's preview to be painted before Cornerstone3D's 6 MB chunk is evaluated and
 * initialised: both need the page's one main thread, and the first pixels come first (UX R18). On a quiet machine
 * the preview is on screen before the app gets here, so nothing waits; without a preview nothing waits either.
 */
export function previewSettled(studyUid: string, institution: string | undefined, capMs = 1000): Promise<void> {
  const p = bootPreview(studyUid, institution)
  if (!p || p.paintedAt !== null || p.ended) return Promise.resolve()
  return Promise.race([p.settled, new Promise<void>((resolve) => setTimeout(resolve, capMs))])
}
