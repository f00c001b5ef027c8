/**
 * The layout a study opens in (REQ: VIEW-12; UX R18 "2 DR images load in < 3 s" — both shown at once): one stack
 * keeps 1×1; a study of at most two images shows them side by side (1×2), also when both are in one series; several
 * series are laid out so each gets a viewport — all of them when every series is a few projection images (DR, CR,
 * MG views …, up to 2×3), two when the study holds stacks (CT, MR …: every displayed series is decoded whole, so a
 * third or fourth big stack would only compete with the first for the network, the decoder and the cache).
 */
import type { Layout } from './layouts'

export interface HangingSeries {
  seriesUid: string
  /** Instances (QIDO NumberOfSeriesRelatedInstances); a multi-frame instance counts once. */
  instanceCount: number
}

export interface HangingCell {
  seriesUid: string
  /** Image of the series the viewport opens at. */
  index: number
}

export interface Hanging {
  layout: Layout
  cells: HangingCell[]
}

/** A series of at most this many instances is a set of projection views rather than a stack. */
export const SMALL_SERIES = 4
/** Most viewports opened at once for a study of projection views. */
export const MAX_VIEWS = 6

function grid(n: number): Layout {
  if (n <= 1) return { rows: 1, cols: 1 }
  if (n <= 3) return { rows: 1, cols: n }
  if (n === 4) return { rows: 2, cols: 2 }
  return { rows: 2, cols: 3 }
}

/** The initial layout and what each of its viewports shows, for the image series of a study in browser order. */
export function initialHanging(series: HangingSeries[]): Hanging {
  if (series.length === 0) return { layout: { rows: 1, cols: 1 }, cells: [] }
  if (series.length === 1) {
    const s = series[0]
    // a study of two images in one series (e.g. a PA and a lateral view): both, side by side
    if (s.instanceCount === 2) {
      return {
        layout: { rows: 1, cols: 2 },
        cells: [
          { seriesUid: s.seriesUid, index: 0 },
          { seriesUid: s.seriesUid, index: 1 },
        ],
      }
    }
    return { layout: { rows: 1, cols: 1 }, cells: [{ seriesUid: s.seriesUid, index: 0 }] }
  }
  const views = series.every((s) => s.instanceCount > 0 && s.instanceCount <= SMALL_SERIES)
  const n = Math.min(series.length, views ? MAX_VIEWS : 2)
  return { layout: grid(n), cells: series.slice(0, n).map((s) => ({ seriesUid: s.seriesUid, index: 0 })) }
}
