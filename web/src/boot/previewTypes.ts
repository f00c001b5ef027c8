/**
 * What the boot preview (./preview.ts) and the app share through `window` — types only, so that importing them
 * never pulls the boot module into the app's chunks or the app into the boot chunk.
 */
import type { ViewerStats } from '@/viewer/core/stats'

export interface BootPreview {
  studyUid: string
  institution?: string
  /** The QIDO-RS series list the preview fetched (DICOM JSON), for the viewer to reuse instead of asking again. */
  series: Promise<Record<string, { Value?: unknown[] }>[]>
  /** Set once the app took `series` (web/src/viewer/core/bootBridge.ts). */
  seriesTaken?: boolean
  /** The first image series' WADO-RS metadata, asked right after the preview's image; null when the preview did not
   * get that far or the request failed (the app then asks itself). Taken once by the app, with `series`. */
  firstMetadata: Promise<{ seriesUid: string; instances: Record<string, { Value?: unknown[] }>[] } | null>
  /** The instance shown, once chosen. */
  sopUid: string | null
  /** performance.now() when the preview was drawn; null while it is not (yet) shown. */
  paintedAt: number | null
  /** Resolves once the preview is painted or will not be (refused, failed, no image series). */
  settled: Promise<void>
  /** Why it ended ('replaced' by the diagnostic image, 'navigated', 'error', 'other-image'), false while live. */
  ended: false | string
  end(reason?: string): void
}

/** The part of the viewer's probe (web/src/viewer/core/stats.ts) the preview fills before the viewer exists. */
export interface PreviewProbe {
  stats: ViewerStats
  scroll(n: number): void
}

declare global {
  interface Window {
    __teleradPreview?: BootPreview
  }
}
