// REQ: VIEW-12, UX R18 — the layout a study opens in
import { describe, expect, it } from 'vitest'
import { initialHanging } from '../hanging'

const s = (seriesUid: string, instanceCount: number) => ({ seriesUid, instanceCount })

describe('initialHanging', () => {
  it('keeps 1×1 for a single stack', () => {
    expect(initialHanging([s('1.1', 200)])).toEqual({ layout: { rows: 1, cols: 1 }, cells: [{ seriesUid: '1.1', index: 0 }] })
    expect(initialHanging([s('1.1', 1)]).layout).toEqual({ rows: 1, cols: 1 })
  })

  it('shows a 2-image DR side by side, a series each or both in one series', () => {
    expect(initialHanging([s('1.1', 1), s('1.2', 1)])).toEqual({
      layout: { rows: 1, cols: 2 },
      cells: [
        { seriesUid: '1.1', index: 0 },
        { seriesUid: '1.2', index: 0 },
      ],
    })
    expect(initialHanging([s('1.1', 2)])).toEqual({
      layout: { rows: 1, cols: 2 },
      cells: [
        { seriesUid: '1.1', index: 0 },
        { seriesUid: '1.1', index: 1 },
      ],
    })
  })

  it('gives each projection view a viewport, up to 2×3', () => {
    expect(initialHanging([s('1', 1), s('2', 1), s('3', 1)]).layout).toEqual({ rows: 1, cols: 3 })
    const mg = initialHanging([s('1', 1), s('2', 1), s('3', 1), s('4', 1)])
    expect(mg.layout).toEqual({ rows: 2, cols: 2 })
    expect(mg.cells.map((c) => c.seriesUid)).toEqual(['1', '2', '3', '4'])
    const many = initialHanging(Array.from({ length: 9 }, (_, i) => s(String(i + 1), 1)))
    expect(many.layout).toEqual({ rows: 2, cols: 3 })
    expect(many.cells).toHaveLength(6)
  })

  it('opens two stacks side by side and no more', () => {
    const ct = initialHanging([s('1', 2), s('2', 300), s('3', 300), s('4', 120)])
    expect(ct.layout).toEqual({ rows: 1, cols: 2 })
    expect(ct.cells.map((c) => c.seriesUid)).toEqual(['1', '2'])
  })

  it('an empty study: one empty viewport', () => {
    expect(initialHanging([])).toEqual({ layout: { rows: 1, cols: 1 }, cells: [] })
  })
})
