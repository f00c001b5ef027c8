// REQ: VIEW-12 — layouts 1×1 … 6×8 and any rows × columns
import { describe, expect, it } from 'vitest'
import { LAYOUTS, assignSeries, clampLayout, layoutLabel, parseLayout, viewportCount } from '../layouts'

describe('view12 layouts', () => {
  it('offers the fixed layouts of the requirement in order', () => {
    expect(LAYOUTS.map(layoutLabel)).toEqual(['1×1', '1×2', '2×2', '2×3', '3×4', '4×6', '6×8'])
    expect(viewportCount({ rows: 6, cols: 8 })).toBe(48)
  })

  it('parses a custom rows × columns and refuses what is out of range', () => {
    expect(parseLayout('3x5')).toEqual({ rows: 3, cols: 5 })
    expect(parseLayout(' 2 × 7 ')).toEqual({ rows: 2, cols: 7 })
    expect(parseLayout('2*2')).toEqual({ rows: 2, cols: 2 })
    expect(parseLayout('0x3')).toBeNull()
    expect(parseLayout('9x1')).toBeNull()
    expect(parseLayout('abc')).toBeNull()
    expect(clampLayout({ rows: 1.5, cols: 2 })).toBeNull()
  })

  it('keeps the series shown, fills new viewports with unshown series, then repeats', () => {
    expect(assignSeries([], ['a', 'b', 'c'], 1)).toEqual(['a'])
    expect(assignSeries(['a'], ['a', 'b', 'c'], 4)).toEqual(['a', 'b', 'c', 'a'])
    expect(assignSeries(['c', 'a', 'b', 'a'], ['a', 'b', 'c'], 2)).toEqual(['c', 'a'])
    expect(assignSeries([], [], 2)).toEqual([null, null])
  })
})
