// REQ: VIEW-01, UX R18 (issue 16) — whole-series loading reports its progress a few times a second, not per image
import { afterEach, describe, expect, it, vi } from 'vitest'

const loaded = vi.hoisted(() => new Set<string>())
const clock = vi.hoisted(() => ({ now: 0 }))
vi.mock('@cornerstonejs/core', () => ({
  cache: { getImageLoadObject: () => undefined, isLoaded: (id: string) => loaded.has(id) },
  imageLoader: {
    loadAndCacheImage: async (id: string) => {
      clock.now += 10 // each image takes 10 ms
      if (id.endsWith('bad')) throw new Error('undecodable')
      loaded.add(id)
      return { decodeTimeInMS: 2, loadTimeInMS: 3 }
    },
  },
}))
vi.mock('../bulk', () => ({ fetchBulk: async () => 0, installBulkLoader: () => undefined, releaseFrame: () => undefined }))
vi.mock('../init', () => ({ initCornerstone: async () => undefined }))
vi.mock('../series', () => ({ loadSeries: vi.fn(), loadSeriesList: vi.fn() }))

const { cacheImages, PROGRESS_EVERY_MS } = await import('../prefetch')

afterEach(() => {
  loaded.clear()
  vi.restoreAllMocks()
})

describe('view01 series loading progress', () => {
  it('reports at most every PROGRESS_EVERY_MS, and always the last state', async () => {
    vi.spyOn(performance, 'now').mockImplementation(() => clock.now)
    clock.now = 1000
    const ids = Array.from({ length: 200 }, (_, i) => `wadors:x/${i}${i === 7 ? 'bad' : ''}`)
    const seen: number[] = []
    const p = await cacheImages(ids, (pr) => seen.push(pr.done))
    expect(p).toMatchObject({ done: 200, total: 200, failed: 1, decodeMs: 2 * 199, fetchMs: 3 * 199 })
    // 200 images × 10 ms = 2 s: about 20 reports, not 200, the first at once and the last with everything done
    expect(seen.length).toBeGreaterThan(10)
    expect(seen.length).toBeLessThanOrEqual(2000 / PROGRESS_EVERY_MS + 2)
    expect(seen[0]).toBe(1)
    expect(seen.at(-1)).toBe(200)
  })

  it('reports where it got to when stopped early', async () => {
    const abort = new AbortController()
    const seen: number[] = []
    const ids = Array.from({ length: 50 }, (_, i) => `wadors:y/${i}`)
    const run = cacheImages(ids, (pr) => seen.push(pr.done), abort.signal)
    abort.abort()
    const p = await run
    expect(p.done).toBeLessThan(50)
    expect(seen.at(-1)).toBe(p.done)
  })
})
