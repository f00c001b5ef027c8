/**
 * DICOM overlays, group 60xx (REQ: VIEW-03). Cornerstone3D does not draw them, so the viewer decodes OverlayData
 * (60xx,3000: 1 bit a pixel, least significant bit first, rows×columns a frame, frames packed back to back) from the
 * WADO-RS metadata — inline base64 or its BulkDataURI — and paints it on a canvas over the image.
 */
import type { DicomJson } from './dicomweb'

export interface OverlayPlane {
  group: string
  rows: number
  cols: number
  /** 0-based image position of the overlay's top-left pixel (from 60xx,0050, 1-based row\column). */
  x: number
  y: number
  type: string
  description: string
  frames: number
  /** 1-based image frame the overlay's first frame belongs to (60xx,0051). */
  frameOrigin: number
  inline?: Uint8Array
  bulkDataUri?: string
}

export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

function first(ds: DicomJson, tag: string): unknown {
  return ds[tag]?.Value?.[0]
}

/** Every overlay plane an instance declares (groups 6000..601E, even). */
export function overlayPlanes(ds: DicomJson): OverlayPlane[] {
  const out: OverlayPlane[] = []
  for (let g = 0x6000; g <= 0x601e; g += 2) {
    const group = g.toString(16).toUpperCase()
    const data = ds[`${group}3000`]
    if (!data) continue
    const rows = Number(first(ds, `${group}0010`))
    const cols = Number(first(ds, `${group}0011`))
    if (!(rows > 0 && cols > 0)) continue
    const origin = (ds[`${group}0050`]?.Value as number[] | undefined) ?? [1, 1]
    out.push({
      group,
      rows,
      cols,
      y: Number(origin[0] ?? 1) - 1,
      x: Number(origin[1] ?? 1) - 1,
      type: String(first(ds, `${group}0040`) ?? 'G'),
      description: String(first(ds, `${group}0022`) ?? ''),
      frames: Math.max(1, Number(first(ds, `${group}0015`) ?? 1) || 1),
      frameOrigin: Math.max(1, Number(first(ds, `${group}0051`) ?? 1) || 1),
      inline: data.InlineBinary ? base64ToBytes(data.InlineBinary) : undefined,
      bulkDataUri: data.BulkDataURI,
    })
  }
  return out
}

/**
 * The bits of one overlay frame as a 0/1 mask of rows×cols (frame 0-based within the overlay). Bits are packed
 * LSB-first across the whole OverlayData, so a frame may start mid-byte.
 */
export function unpackOverlay(bytes: Uint8Array, rows: number, cols: number, frame = 0): Uint8Array {
  const n = rows * cols
  const mask = new Uint8Array(n)
  const start = frame * n
  for (let i = 0; i < n; i++) {
    const bit = start + i
    const byte = bytes[bit >> 3]
    if (byte !== undefined && (byte >> (bit & 7)) & 1) mask[i] = 1
  }
  return mask
}

/** The overlay frame (0-based) that goes with an image frame (1-based), or null when none does. */
export function overlayFrameFor(plane: OverlayPlane, imageFrame: number): number | null {
  if (plane.frames <= 1) return 0
  const f = imageFrame - plane.frameOrigin
  return f >= 0 && f < plane.frames ? f : null
}

const bulkCache = new Map<string, Promise<Uint8Array>>()

/** The OverlayData bytes, from the metadata or fetched once from its BulkDataURI. */
export function overlayBytes(plane: OverlayPlane): Promise<Uint8Array> {
  if (plane.inline) return Promise.resolve(plane.inline)
  const uri = plane.bulkDataUri
  if (!uri) return Promise.resolve(new Uint8Array())
  let job = bulkCache.get(uri)
  if (!job) {
    job = fetch(uri, { credentials: 'same-origin', headers: { Accept: 'application/octet-stream' } })
      .then(async (r) => {
        if (!r.ok) throw new Error(`overlay ${r.status}`)
        const buf = new Uint8Array(await r.arrayBuffer())
        return r.headers.get('Content-Type')?.startsWith('multipart/') ? firstPart(buf, r.headers.get('Content-Type')!) : buf
      })
      .catch((e) => {
        bulkCache.delete(uri)
        throw e
      })
    bulkCache.set(uri, job)
  }
  return job
}

/** The body of the first part of a multipart/related answer. */
export function firstPart(buf: Uint8Array, contentType: string): Uint8Array {
  const m = contentType.match(/boundary="?([^";]+)"?/)
  if (!m) return buf
  const text = new TextDecoder('latin1').decode(buf)
  const delim = `--${m[1]}`
  const s = text.indexOf(delim)
  if (s < 0) return buf
  const headEnd = text.indexOf('\r\n\r\n', s)
  const e = text.indexOf(`\r\n${delim}`, headEnd + 4)
  if (headEnd < 0 || e < 0) return buf
  return buf.subarray(headEnd + 4, e)
}

/** An RGBA bitmap of a mask (white where set, transparent elsewhere). */
export function maskToRgba(
  mask: Uint8Array,
  color: [number, number, number] = [255, 255, 0],
): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(new ArrayBuffer(mask.length * 4))
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue
    out[i * 4] = color[0]
    out[i * 4 + 1] = color[1]
    out[i * 4 + 2] = color[2]
    out[i * 4 + 3] = 255
  }
  return out
}
