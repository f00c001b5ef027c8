// REQ: VIEW-01, UX R18 (issue 16) — the series' pixel data parsed from a streamed multipart/related answer
import { describe, expect, it } from 'vitest'
import { boundaryOf, indexOf, MultipartError, MultipartParser, partTransferSyntax } from '../multipart'

const enc = (s: string) => new TextEncoder().encode(s)
const B = 'a1b2c3d4e5f6'

function frame(n: number, size: number): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 7 + n * 13) & 0xff
  // a payload that contains the delimiter's first bytes and CRLFs, as pixel data may
  const tricky = enc(`\r\n--${B.slice(0, 6)}\r\n\r\n`)
  if (size >= tricky.length + 3) out.set(tricky, 3)
  return out
}

/** A telerad-style body: `sized` parts carry Content-Length, the others are ended by the delimiter. */
function body(frames: Uint8Array[], sized: boolean, preamble = ''): Uint8Array {
  const pieces: Uint8Array[] = [enc(preamble)]
  frames.forEach((f, i) => {
    let head = `--${B}\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n`
    head += `Content-Location: http://h/dicomweb/studies/1/series/2/instances/1.2.${i}/frames/1\r\n`
    if (sized) head += `Content-Length: ${f.length}\r\n`
    pieces.push(enc(head + '\r\n'), f, enc('\r\n'))
  })
  pieces.push(enc(`--${B}--\r\n`))
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of pieces) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function parseIn(data: Uint8Array, cuts: number[]): { parts: ReturnType<MultipartParser['push']>; parser: MultipartParser } {
  const parser = new MultipartParser(B)
  const parts = []
  let prev = 0
  for (const cut of [...cuts, data.length]) {
    parts.push(...parser.push(data.subarray(prev, cut)))
    prev = cut
  }
  return { parts, parser }
}

function rng(seed: number): () => number {
  let s = seed
  return () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
}

describe('view01 multipart parser', () => {
  const frames = [frame(1, 300), frame(2, 1), frame(3, 0), frame(4, 257)]

  for (const sized of [true, false]) {
    it(`reads every part whatever the split (${sized ? 'Content-Length' : 'delimiter search'})`, () => {
      const data = body(frames, sized, 'preamble to ignore\r\n')
      // every single cut position, then random multi-cuts (inside boundary lines, headers and payloads)
      const splits: number[][] = Array.from({ length: data.length - 1 }, (_, i) => [i + 1])
      const r = rng(7)
      for (let t = 0; t < 200; t++) {
        const n = 1 + Math.floor(r() * 12)
        splits.push([...new Set(Array.from({ length: n }, () => 1 + Math.floor(r() * (data.length - 1))))].sort((a, b) => a - b))
      }
      splits.push(Array.from({ length: data.length - 1 }, (_, i) => i + 1)) // byte by byte
      for (const cuts of splits) {
        const { parts, parser } = parseIn(data, cuts)
        expect(parts.map((p) => Array.from(p.body))).toEqual(frames.map((f) => Array.from(f)))
        expect(parts[0].headers['content-location']).toBe('http://h/dicomweb/studies/1/series/2/instances/1.2.0/frames/1')
        expect(parts[3].headers['content-type']).toContain('transfer-syntax=1.2.840.10008.1.2.1')
        expect(parser.done).toBe(true)
        expect(() => parser.finish()).not.toThrow()
      }
    })
  }

  it('hands a part out as soon as its last byte is in', () => {
    const data = body(frames, true)
    const parser = new MultipartParser(B)
    const end = indexOf(data, frames[0], 0) + frames[0].length
    expect(parser.push(data.subarray(0, end))).toHaveLength(1)
  })

  it('refuses an answer cut short, and a part longer than its Content-Length', () => {
    const data = body(frames, true)
    const { parser } = parseIn(data.subarray(0, data.length - 10), [50, 400])
    expect(parser.done).toBe(false)
    expect(() => parser.finish()).toThrow(MultipartError)
    const lying = enc(`--${B}\r\nContent-Length: 2\r\n\r\nabcd\r\n--${B}--\r\n`)
    expect(() => new MultipartParser(B).push(lying)).toThrow(MultipartError)
  })

  it('reads the boundary and each part\'s transfer syntax', () => {
    expect(boundaryOf('multipart/related; type="application/octet-stream"; boundary=abc')).toBe('abc')
    expect(boundaryOf('multipart/related; boundary="x y"; type=a')).toBe('x y')
    expect(boundaryOf('application/json')).toBeNull()
    expect(partTransferSyntax('application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.70')).toBe(
      '1.2.840.10008.1.2.4.70',
    )
    expect(partTransferSyntax('image/dicom-rle')).toBe('1.2.840.10008.1.2.5')
    expect(partTransferSyntax(undefined)).toBe('1.2.840.10008.1.2.1')
  })
})
