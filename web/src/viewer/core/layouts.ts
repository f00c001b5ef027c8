/** Viewport layouts (REQ: VIEW-12): the fixed choices and any rows × columns up to MAX. */

export interface Layout {
  rows: number
  cols: number
}

export const MAX_ROWS = 8
export const MAX_COLS = 8

export const LAYOUTS: readonly Layout[] = [
  { rows: 1, cols: 1 },
  { rows: 1, cols: 2 },
  { rows: 2, cols: 2 },
  { rows: 2, cols: 3 },
  { rows: 3, cols: 4 },
  { rows: 4, cols: 6 },
  { rows: 6, cols: 8 },
]

export function layoutLabel(l: Layout): string {
  return `${l.rows}×${l.cols}`
}

/** Parse "2x3", "2×3" or "2*3"; null when malformed or out of range. */
export function parseLayout(text: string): Layout | null {
  const m = text.trim().match(/^(\d{1,2})\s*[x×X*]\s*(\d{1,2})$/)
  if (!m) return null
  return clampLayout({ rows: Number(m[1]), cols: Number(m[2]) })
}

export function clampLayout(l: Layout): Layout | null {
  if (!Number.isInteger(l.rows) || !Number.isInteger(l.cols)) return null
  if (l.rows < 1 || l.cols < 1 || l.rows > MAX_ROWS || l.cols > MAX_COLS) return null
  return { rows: l.rows, cols: l.cols }
}

export function viewportCount(l: Layout): number {
  return l.rows * l.cols
}

/**
 * Which series each viewport shows after a layout change: existing assignments are kept, new viewports get the
 * next series not yet shown (then repeat from the first), viewports beyond the new count are dropped.
 */
export function assignSeries(current: (string | null)[], seriesUids: string[], count: number): (string | null)[] {
  const out = current.slice(0, count)
  const shown = new Set(out.filter(Boolean))
  const unused = seriesUids.filter((s) => !shown.has(s))
  let k = 0
  while (out.length < count) {
    if (unused.length) out.push(unused.shift()!)
    else if (seriesUids.length) out.push(seriesUids[k++ % seriesUids.length])
    else out.push(null)
  }
  return out
}
