/**
 * PALETTE COLOR images (REQ: VIEW-01; US, NM, SC): telerad's WADO-RS metadata carries the palette's lookup table data
 * (0028,1201–1203, OW) as InlineBinary, while the dicom-image-loader's WADO-RS metadata provider reads only `Value`
 * arrays — without them it throws "does not have a complete color palette". The tables are decoded into values here
 * before the metadata is registered.
 */
import type { DicomJson } from './dicomweb'

const TABLES: readonly [data: string, descriptor: string][] = [
  ['00281201', '00281101'],
  ['00281202', '00281102'],
  ['00281203', '00281103'],
]

/** The entries of one inline lookup table: 16-bit little-endian words, or bytes when the descriptor says 8 bits
 * and the data holds one byte an entry. */
export function lutEntries(base64: string, descriptor: number[] | undefined): number[] {
  const raw = atob(base64)
  const bytes = new Uint8Array(raw.length)
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i)
  const count = descriptor?.[0] === 0 ? 65536 : (descriptor?.[0] ?? 0)
  if (descriptor?.[2] === 8 && bytes.length < 2 * count) return [...bytes.subarray(0, count || bytes.length)]
  const words = new DataView(bytes.buffer)
  const out: number[] = []
  for (let i = 0; i + 1 < bytes.length; i += 2) out.push(words.getUint16(i, true))
  return out
}

/** A copy of `ds` whose inline palette tables are value arrays (the rest untouched; `ds` itself when none). */
export function withPaletteValues(ds: DicomJson): DicomJson {
  if (!TABLES.some(([tag]) => ds[tag]?.InlineBinary)) return ds
  const out: DicomJson = { ...ds }
  for (const [tag, desc] of TABLES) {
    const el = ds[tag]
    if (!el?.InlineBinary) continue
    out[tag] = { vr: el.vr, Value: lutEntries(el.InlineBinary, ds[desc]?.Value as number[] | undefined) }
  }
  return out
}
