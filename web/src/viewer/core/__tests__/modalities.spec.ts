// REQ: VIEW-01, VIEW-05 — MONOCHROME1 display, palette colour tables from WADO-RS metadata, the pixel probe's sums
import { describe, expect, it } from 'vitest'
import type { DicomJson } from '../dicomweb'
import { loadPaletteBulk, lutEntries, withPaletteValues } from '../palette'
import { modalityValue, pixelOffset } from '../pixelProbe'
import { shownInvert } from '../voi'

function b64(bytes: number[]): string {
  return btoa(String.fromCharCode(...bytes))
}

describe('view01 MONOCHROME1 and the invert toggle', () => {
  it('draws MONOCHROME1 inverted, and the user toggle flips either kind', () => {
    expect(shownInvert(false, 'MONOCHROME1')).toBe(true)
    expect(shownInvert(true, 'MONOCHROME1')).toBe(false)
    expect(shownInvert(false, 'MONOCHROME2')).toBe(false)
    expect(shownInvert(true, 'MONOCHROME2')).toBe(true)
    expect(shownInvert(false, 'RGB')).toBe(false)
    expect(shownInvert(false, undefined)).toBe(false)
  })
})

describe('view01 palette colour lookup tables', () => {
  it('reads 16-bit little-endian entries', () => {
    expect(lutEntries(b64([0x00, 0x01, 0xff, 0xff, 0x34, 0x12]), [3, 0, 16])).toEqual([256, 65535, 0x1234])
  })

  it('reads one byte an entry when an 8-bit table is stored that way', () => {
    expect(lutEntries(b64([1, 2, 3, 0]), [3, 0, 8])).toEqual([1, 2, 3])
  })

  it('turns inline tables into values and leaves other metadata alone', () => {
    const table = b64([0, 0, 0, 1])
    const ds: DicomJson = {
      '00280004': { vr: 'CS', Value: ['PALETTE COLOR'] },
      '00281101': { vr: 'US', Value: [2, 0, 16] },
      '00281102': { vr: 'US', Value: [2, 0, 16] },
      '00281103': { vr: 'US', Value: [2, 0, 16] },
      '00281201': { vr: 'OW', InlineBinary: table },
      '00281202': { vr: 'OW', InlineBinary: table },
      '00281203': { vr: 'OW', InlineBinary: table },
    }
    const out = withPaletteValues(ds)
    expect(out['00281201']).toEqual({ vr: 'OW', Value: [0, 256] })
    expect(out['00281203']?.Value).toEqual([0, 256])
    expect(out['00280004']).toBe(ds['00280004'])
    expect(ds['00281201']?.InlineBinary).toBe(table) // the registered copy changes, not the fetched document
    const grey: DicomJson = { '00280004': { vr: 'CS', Value: ['MONOCHROME2'] } }
    expect(withPaletteValues(grey)).toBe(grey)
  })
})

describe('view01 palette tables sent as bulk data (over 1 KB)', () => {
  it('fetches each BulkDataURI table as raw bytes and puts its values in place; inline tables untouched', async () => {
    const words = (n: number, f: (i: number) => number) => {
      const b = new Uint8Array(2 * n)
      const v = new DataView(b.buffer)
      for (let i = 0; i < n; i++) v.setUint16(2 * i, f(i), true)
      return b
    }
    const bodies: Record<string, Uint8Array> = {
      '/i/bulkdata/00281201': words(4096, (i) => i * 16),
      '/i/bulkdata/00281202': words(4096, () => 7),
      '/i/bulkdata/00281203': words(4096, (i) => 65535 - i),
    }
    const asked: string[] = []
    const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input)
      asked.push(`${url} ${(init?.headers as Record<string, string>).Accept}`)
      return new Response(bodies[url].buffer as ArrayBuffer, { status: 200 })
    }) as typeof fetch
    const desc = { vr: 'US', Value: [4096, 0, 16] }
    const ds: DicomJson = {
      '00281101': desc, '00281102': desc, '00281103': desc,
      '00281201': { vr: 'OW', BulkDataURI: '/i/bulkdata/00281201' },
      '00281202': { vr: 'OW', BulkDataURI: '/i/bulkdata/00281202' },
      '00281203': { vr: 'OW', BulkDataURI: '/i/bulkdata/00281203' },
    }
    const inline: DicomJson = { '00281201': { vr: 'OW', InlineBinary: 'AAE=' } }
    await loadPaletteBulk([ds, inline], undefined, fetchFn)
    expect(asked).toHaveLength(3)
    expect(asked.every((a) => a.endsWith(' application/octet-stream'))).toBe(true)
    expect(ds['00281201'].Value).toHaveLength(4096)
    expect((ds['00281201'].Value as number[]).slice(0, 3)).toEqual([0, 16, 32])
    expect((ds['00281203'].Value as number[])[4095]).toBe(65535 - 4095)
    expect(inline['00281201']).toEqual({ vr: 'OW', InlineBinary: 'AAE=' })
  })

  it('leaves a table it cannot fetch as it is (that image fails alone)', async () => {
    const ds: DicomJson = { '00281201': { vr: 'OW', BulkDataURI: '/gone' } }
    await loadPaletteBulk([ds], undefined, (async () => new Response('', { status: 404 })) as typeof fetch)
    expect(ds['00281201']).toEqual({ vr: 'OW', BulkDataURI: '/gone' })
  })
})

describe('view01 pixel probe', () => {
  it('applies the modality LUT unless the loader already did', () => {
    expect(modalityValue(1000, 1, -1024, false)).toBe(-24)
    expect(modalityValue(100, 0.5, 0, false)).toBe(50)
    expect(modalityValue(-24, 1, -1024, true)).toBe(-24)
    expect(modalityValue(7, undefined, undefined, false)).toBe(7)
  })

  it('finds a pixel in interleaved samples', () => {
    expect(pixelOffset(0, 0, 64, 1)).toBe(0)
    expect(pixelOffset(3, 2, 10, 1)).toBe(23)
    expect(pixelOffset(3, 2, 10, 3)).toBe(69)
  })
})
