// REQ: VIEW-03 — DICOM overlays (60xx) decoded from OverlayData
import { describe, expect, it } from 'vitest'
import type { DicomJson } from '../dicomweb'
import { firstPart, maskToRgba, overlayFrameFor, overlayPlanes, unpackOverlay } from '../overlay'

function pack(bits: number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(bits.length / 8))
  bits.forEach((b, i) => {
    if (b) out[i >> 3] |= 1 << (i & 7)
  })
  return out
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
}

describe('view03 overlays', () => {
  it('unpacks least-significant-bit-first rows, frames packed back to back', () => {
    // 3×3 frames: an X, then a plus — 18 bits, the second frame starts mid-byte
    const x = [1, 0, 1, 0, 1, 0, 1, 0, 1]
    const plus = [0, 1, 0, 1, 1, 1, 0, 1, 0]
    const bytes = pack([...x, ...plus])
    expect([...unpackOverlay(bytes, 3, 3, 0)]).toEqual(x)
    expect([...unpackOverlay(bytes, 3, 3, 1)]).toEqual(plus)
  })

  it('reads the planes of groups 6000–601E with origin, type and inline data', () => {
    const ds: DicomJson = {
      '60000010': { vr: 'US', Value: [2] },
      '60000011': { vr: 'US', Value: [4] },
      '60000040': { vr: 'CS', Value: ['G'] },
      '60000050': { vr: 'SS', Value: [3, 5] },
      '60003000': { vr: 'OW', InlineBinary: b64(pack([1, 1, 1, 1, 0, 0, 0, 1])) },
      '60020010': { vr: 'US', Value: [1] },
      '60020011': { vr: 'US', Value: [1] },
      '60023000': { vr: 'OW', BulkDataURI: 'http://x/bulkdata/60023000' },
      '60040010': { vr: 'US', Value: [8] }, // no OverlayData: not an overlay
    }
    const planes = overlayPlanes(ds)
    expect(planes.map((p) => p.group)).toEqual(['6000', '6002'])
    expect(planes[0]).toMatchObject({ rows: 2, cols: 4, x: 4, y: 2, type: 'G', frames: 1 })
    expect([...unpackOverlay(planes[0].inline!, 2, 4)]).toEqual([1, 1, 1, 1, 0, 0, 0, 1])
    expect(planes[1].bulkDataUri).toBe('http://x/bulkdata/60023000')
    expect(overlayFrameFor(planes[0], 7)).toBe(0)
  })

  it('maps image frames to overlay frames of a multi-frame overlay', () => {
    const plane = overlayPlanes({
      '60000010': { Value: [1] },
      '60000011': { Value: [1] },
      '60000015': { Value: [3] },
      '60000051': { Value: [2] },
      '60003000': { InlineBinary: 'AA==' },
    })[0]
    expect([1, 2, 3, 4, 5].map((f) => overlayFrameFor(plane, f))).toEqual([null, 0, 1, 2, null])
  })

  it('paints set bits opaque and leaves the rest transparent', () => {
    const rgba = maskToRgba(new Uint8Array([1, 0]))
    expect([...rgba]).toEqual([255, 255, 0, 255, 0, 0, 0, 0])
  })

  it('takes the first part of a multipart bulk data answer', () => {
    const body = '--b1\r\nContent-Type: application/octet-stream\r\n\r\n\u0001\u0002\u0003\r\n--b1--'
    const bytes = new Uint8Array([...body].map((c) => c.charCodeAt(0)))
    expect([...firstPart(bytes, 'multipart/related; type="application/octet-stream"; boundary=b1')]).toEqual([1, 2, 3])
  })
})
