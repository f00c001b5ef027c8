/**
 * Performance figures of the viewer, read by bench/bench_viewer.py (issue 16, UX R18) from `window.__teleradViewer`.
 * Times are `performance.now()` values, i.e. milliseconds since navigation start.
 */
import type { PixelReading } from './pixelProbe'

export interface ViewerStats {
  /** The study's first pixels on screen: the boot preview (web/src/boot/preview.ts) or Cornerstone, whichever first. */
  firstImageMs: number | null
  /** Cornerstone's first rendered image (the diagnostic one). */
  firstDiagnosticImageMs: number | null
  allImagesMs: number | null
  /** Every viewport of the initial layout that shows a series has rendered an image (e.g. both views of a DR). */
  viewportsShownMs: number | null
  imagesTotal: number
  imagesCached: number
  decodeMsTotal: number
  fetchMsTotal: number
}

export interface ViewerProbe {
  stats: ViewerStats
  scroll(n: number): void
  /** Image pixel (x, y) of viewport `index`'s current image: its value and what the canvas shows (tests). */
  pixel?(x: number, y: number, index?: number): PixelReading | null
}

declare global {
  interface Window {
    __teleradViewer?: ViewerProbe
  }
}

export function freshStats(): ViewerStats {
  return {
    firstImageMs: null,
    firstDiagnosticImageMs: null,
    allImagesMs: null,
    viewportsShownMs: null,
    imagesTotal: 0,
    imagesCached: 0,
    decodeMsTotal: 0,
    fetchMsTotal: 0,
  }
}

/** Install a new probe for one viewer (the last opened wins); returns its stats object to update in place. */
export function installProbe(
  scroll: (n: number) => void,
  pixel?: (x: number, y: number, index?: number) => PixelReading | null,
): ViewerStats {
  const stats = freshStats()
  window.__teleradViewer = { stats, scroll, pixel }
  return stats
}
