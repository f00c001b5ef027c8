/**
 * Performance figures of the viewer, read by bench/bench_viewer.py (issue 16, UX R18) from `window.__teleradViewer`.
 * Times are `performance.now()` values, i.e. milliseconds since navigation start.
 */
export interface ViewerStats {
  /** The study's first pixels on screen: the boot preview (web/src/boot/preview.ts) or Cornerstone, whichever first. */
  firstImageMs: number | null
  /** Cornerstone's first rendered image (the diagnostic one). */
  firstDiagnosticImageMs: number | null
  allImagesMs: number | null
  imagesTotal: number
  imagesCached: number
  decodeMsTotal: number
  fetchMsTotal: number
}

export interface ViewerProbe {
  stats: ViewerStats
  scroll(n: number): void
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
    imagesTotal: 0,
    imagesCached: 0,
    decodeMsTotal: 0,
    fetchMsTotal: 0,
  }
}

/** Install a new probe for one viewer (the last opened wins); returns its stats object to update in place. */
export function installProbe(scroll: (n: number) => void): ViewerStats {
  const stats = freshStats()
  window.__teleradViewer = { stats, scroll }
  return stats
}
