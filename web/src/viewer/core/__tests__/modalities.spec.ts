// REQ: VIEW-01, VIEW-05 — MONOCHROME1 display, palette colour tables from WADO-RS metadata, the pixel probe's sums
import { describe, expect, it } from 'vitest'
import type { DicomJson } from '../dicomweb'
import { lutEntries, withPaletteValues } from '../palette'
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
