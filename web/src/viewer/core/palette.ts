/**
 * PALETTE COLOR images (REQ: VIEW-01; US, NM, SC): telerad's WADO-RS metadata carries the palette's lookup table data
 * (0028,1201–1203, OW) as InlineBinary, while the dicom-image-loader's WADO-RS metadata provider reads only `Value`
 * arrays — without them it throws "does not have a complete color palette". The tables are decoded into values here
 * before the metadata is registered. Tables over the server's inline limit (1 KB: 16-bit tables of 4,096 or 65,536
 * entries) come as a BulkDataURI instead: `loadPaletteBulk` fetches them (PS3.18 bulk data, raw bytes) and puts the
 * values in place when the metadata arrives.
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
  return lutEntriesOf(bytes, descriptor)
}

/** The entries of one lookup table given as bytes (see lutEntries). */
export function lutEntriesOf(bytes: Uint8Array, descriptor: number[] | undefined): number[] {
  const count = descriptor?.[0] === 0 ? 65536 : (descriptor?.[0] ?? 0)
  if (descriptor?.[2] === 8 && bytes.length < 2 * count) return [...bytes.subarray(0, count || bytes.length)]
  const words = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
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

/** Bulk palette tables fetched at once (a series' instances usually share one palette, but each has its own URI). */
const BULK_PARALLEL = 4

/**
 * Put the values of every palette table sent as a BulkDataURI into `instances` (in place), so the image loader finds
 * a complete palette. A table that cannot be fetched is left as it is: that image then fails to load with the
 * loader's own message, the others still show.
 */
export async function loadPaletteBulk(
  instances: DicomJson[],
  signal?: AbortSignal,
  fetchFn: typeof fetch = (input, init) => fetch(input, init),
): Promise<void> {
  const jobs: (() => Promise<void>)[] = []
  for (const ds of instances) {
    for (const [tag, desc] of TABLES) {
      const el = ds[tag]
      const uri = el?.BulkDataURI
      if (!uri || el.Value || el.InlineBinary) continue
      jobs.push(async () => {
        const resp = await fetchFn(uri, {
          credentials: 'same-origin',
          headers: { Accept: 'application/octet-stream' },
          signal,
        })
        if (!resp.ok) return
        const bytes = new Uint8Array(await resp.arrayBuffer())
        ds[tag] = { vr: el.vr, Value: lutEntriesOf(bytes, ds[desc]?.Value as number[] | undefined) }
      })
    }
  }
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]
      try {
        await job()
      } catch (e) {
        if (signal?.aborted) throw e
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(BULK_PARALLEL, jobs.length) }, worker))
}
