/**
 * A series' frames in a few requests (issue 16; REQ: VIEW-01, UX R18): telerad's WADO-RS series pixel data
 * (`…/series/{uid}/pixeldata?instances=…`, api/dicomweb/pixeldata.py) streamed as multipart/related, parsed as it
 * arrives (multipart.ts) and handed to Cornerstone's image cache without a request per frame.
 *
 * The hook is the dicom-image-loader's own (5.14, imageLoader/wadors/loadImage.js): before it fetches a `wadors:`
 * frame it asks the metadata providers for `compressedFrameData` of that image id and, when one answers with the
 * frame's bytes and transfer syntax, decodes them through `createImage` — in its web workers, exactly as a fetched
 * frame — and falls back to the network when they do not decode. So the `wadors:` image ids, their metadata and
 * decoding stay as they are; this module adds
 *   - a metadata provider answering `compressedFrameData` from the frames received (`FrameStore`), and
 *   - a thin `wadors` image loader in front of the library's: a frame whose bulk request is still under way waits
 *     for it instead of being fetched alone — unless the viewport asks for it (an `interaction` request: the user
 *     scrolled ahead), which fetches it alone at once; a frame the bulk request did not bring (it failed, or was cut
 *     short) is fetched alone, as before.
 * A received frame's bytes go to the decode worker transferred, not copied (a 1,000-slice CT's copies were ~1.4 s of
 * the main thread, issue 16), and the decoded pixels come back the same way (the library's decode call and worker
 * patched for it: patches/, applied by `npm ci`'s postinstall).
 * A received frame is dropped from the store once its image is loaded (or the run is aborted): the store holds
 * frames between their arrival and their decoding, bounded by HELD_BYTES_MAX (only the earliest request of a run
 * may go past it, so the frames the loader waits for always keep coming).
 *
 * A bulk request asks with the Accept header a frame fetched alone would (frameAccept.ts: the stored syntax and the
 * bandwidth mode): on a LAN a JPEG-lossless series comes uncompressed, decoded by the server, and each frame goes to
 * the loader with the transfer syntax its part names (the stored one when the server's decoders were busy).
 */
import { metaData, registerImageLoader } from '@cornerstonejs/core'
import dicomImageLoader from '@cornerstonejs/dicom-image-loader'
import { parseImageId } from './dicomweb'
import { acceptForImage } from './frameAccept'
import { boundaryOf, MultipartParser, partTransferSyntax } from './multipart'

/** Instances in a run's first request: the images the viewer shows next arrive while the rest is asked for. */
export const FIRST_CHUNK = 4
/** Characters of SOP Instance UIDs in one request's `instances=` (the request line stays under a proxy's 8 kB). */
export const URL_BUDGET = 6000
/** Bulk requests of a run in flight at once. */
export const PARALLEL = 2
/** Bytes of received, not yet decoded frames a run keeps before it pauses reading (all but its earliest request). */
export const HELD_BYTES_MAX = 192 * 1024 * 1024
const COMPRESSED_FRAME_DATA = 'compressedFrameData'

export const frameKey = (sopUid: string, frame: number): string => `${sopUid}/${frame}`

function keyOfImageId(imageId: string): string | null {
  const p = parseImageId(imageId)
  return p ? frameKey(p.sopUid, p.frame) : null
}

/** (SOP Instance UID, frame) of a part's Content-Location (…/instances/{sop}/frames/{n}). */
export function keyOfLocation(location: string | undefined): string | null {
  const m = location?.match(/\/instances\/([^/?]+)\/frames\/(\d+)/)
  return m ? frameKey(decodeURIComponent(m[1]), Number(m[2])) : null
}

interface Frame {
  pixelData: Uint8Array
  transferSyntaxUid: string
}

/** A frame kept with its size: its bytes are handed (transferred, not copied) to the decode worker, which leaves
 * `pixelData` empty (detached) on this side while the frame is still in the store. */
interface HeldFrame extends Frame {
  bytes: number
}

/** Frames received and not yet decoded, and the frames a bulk request is expected to bring. */
export class FrameStore {
  private frames = new Map<string, HeldFrame>()
  private waiting = new Map<string, { promise: Promise<void>; resolve: () => void }>()
  private wakers: (() => void)[] = []
  held = 0

  expect(key: string): void {
    if (this.waiting.has(key) || this.frames.has(key)) return
    let resolve!: () => void
    const promise = new Promise<void>((r) => (resolve = r))
    this.waiting.set(key, { promise, resolve })
  }

  /** Resolves when the frame has arrived or its request gave up on it; undefined when nothing is expected. */
  whenSettled(key: string): Promise<void> | undefined {
    return this.waiting.get(key)?.promise
  }

  isExpected(key: string): boolean {
    return this.waiting.has(key)
  }

  put(key: string, frame: Frame): void {
    this.release(key) // a frame two runs asked for: the later copy replaces the earlier
    const bytes = frame.pixelData.byteLength
    this.frames.set(key, { ...frame, bytes })
    this.held += bytes
    this.settle(key)
  }

  /** Nobody waits for `key` from a bulk request any more (the viewport fetched it alone): a part that brings it is
   * not kept. */
  abandon(key: string): void {
    this.settle(key)
  }

  /** The request that was to bring `key` ended without it: its loader fetches it alone. */
  settle(key: string): void {
    const w = this.waiting.get(key)
    if (w) {
      this.waiting.delete(key)
      w.resolve()
    }
  }

  get(key: string): Frame | undefined {
    const f = this.frames.get(key)
    return f && { pixelData: f.pixelData, transferSyntaxUid: f.transferSyntaxUid }
  }

  release(key: string): void {
    const f = this.frames.get(key)
    if (!f) return
    this.frames.delete(key)
    this.held -= f.bytes
    this.wake()
  }

  wake(): void {
    const wakers = this.wakers
    this.wakers = []
    for (const w of wakers) w()
  }

  /** Wait while more than `max` bytes are held, unless `mayGo()` (re-checked whenever a frame is released). */
  async room(max: number, mayGo: () => boolean): Promise<void> {
    while (this.held > max && !mayGo()) await new Promise<void>((r) => this.wakers.push(r))
  }
}

export const store = new FrameStore()

/** The metadata provider: a received frame's bytes for the loader's `compressedFrameData` query. */
export function frameProvider(type: string, query: unknown): unknown {
  if (type !== COMPRESSED_FRAME_DATA || typeof query !== 'string') return undefined
  const key = keyOfImageId(query)
  const frame = key ? store.get(key) : undefined
  if (!frame) return undefined
  const frameNumber = Number(key!.slice(key!.lastIndexOf('/') + 1))
  return { ...frame, frameNumber, frameOfInterest: frameNumber - 1 }
}

type LoadObject = ReturnType<typeof dicomImageLoader.wadors.loadImage>

/** The `wadors` image loader: waits for a frame's bulk request when one is under way, then the library's loader
 * (which takes the received bytes through `frameProvider`, or fetches the frame when there are none). */
export function bulkAwareLoader(
  imageId: string,
  options?: Record<string, unknown>,
  wadors: typeof dicomImageLoader.wadors.loadImage = dicomImageLoader.wadors.loadImage,
): LoadObject {
  const key = keyOfImageId(imageId)
  const settled = key ? store.whenSettled(key) : undefined
  if (key && settled && options?.requestType === 'interaction') {
    // the viewport wants this image now (the user scrolled ahead of the bulk requests): fetched alone at once
    store.abandon(key)
    return wadors(imageId, options)
  }
  const load = () => {
    // a received frame's bytes are the store's alone: the decode worker takes them (transferred, not copied; the
    // library's `transferPixelData`, passed on by patches/@cornerstonejs+dicom-image-loader+5.14.0.patch)
    const opts: Record<string, unknown> = { ...options }
    if (key && store.get(key)) opts.transferPixelData = true
    const promise = wadors(imageId, opts).promise
    return key ? promise.finally(() => store.release(key)) : promise
  }
  if (!settled) return key && store.get(key) ? { promise: load(), cancelFn: undefined } : wadors(imageId, options ?? {})
  return { promise: settled.then(load), cancelFn: undefined }
}

let installed = false

/** Install the provider and the loader (after the dicom-image-loader's init, which registers `wadors`). */
export function installBulkLoader(): void {
  if (installed) return
  installed = true
  metaData.addProvider(frameProvider, 10_000)
  registerImageLoader('wadors', bulkAwareLoader as never)
}

/** Forget a received frame the run will not load after all (already in the cache by another way). */
export function releaseFrame(imageId: string): void {
  const key = keyOfImageId(imageId)
  if (key) store.release(key)
}

export interface BulkRequest {
  url: string
  keys: string[]
  /** The Accept header: the one a frame of these instances fetched alone is asked with. */
  accept: string
}

/** The requests of a run: per series (and query, e.g. `institution=`) and Accept header (`acceptOf`: by the stored
 * syntax), the instances in the order of `imageIds` — FIRST_CHUNK of them first, then as many as URL_BUDGET allows
 * per request. */
export function planRequests(imageIds: string[], acceptOf: (imageId: string) => string = acceptForImage): BulkRequest[] {
  type Group = { base: string; query: string; accept: string; sops: string[]; keys: Map<string, string[]> }
  const groups = new Map<string, Group>()
  for (const id of imageIds) {
    const p = parseImageId(id)
    const at = id.indexOf('/instances/')
    if (!p || at < 0 || !id.startsWith('wadors:')) continue
    const q = id.indexOf('?')
    const base = `${id.slice(7, at)}/pixeldata`
    const query = q >= 0 ? id.slice(q + 1) : ''
    const accept = acceptOf(id)
    const groupKey = `${base}?${query}\n${accept}`
    let g = groups.get(groupKey)
    if (!g) groups.set(groupKey, (g = { base, query, accept, sops: [], keys: new Map() }))
    let keys = g.keys.get(p.sopUid)
    if (!keys) {
      g.sops.push(p.sopUid)
      g.keys.set(p.sopUid, (keys = []))
    }
    keys.push(frameKey(p.sopUid, p.frame))
  }
  const out: BulkRequest[] = []
  for (const g of groups.values()) {
    let i = 0
    while (i < g.sops.length) {
      const chunk: string[] = []
      let size = 0
      const cap = i === 0 ? FIRST_CHUNK : Infinity
      while (i < g.sops.length && chunk.length < cap && (chunk.length === 0 || size + g.sops[i].length + 1 <= URL_BUDGET)) {
        size += g.sops[i].length + 1
        chunk.push(g.sops[i++])
      }
      const params = new URLSearchParams(g.query)
      params.set('instances', chunk.join(','))
      out.push({ url: `${g.base}?${params.toString()}`, keys: chunk.flatMap((s) => g.keys.get(s)!), accept: g.accept })
    }
  }
  return out
}

/** Read one bulk request into the store; every frame it was to bring is settled when it ends, received or not. */
async function readRequest(req: BulkRequest, signal: AbortSignal | undefined, mayOverfill: () => boolean): Promise<number> {
  let received = 0
  try {
    const resp = await fetch(req.url, { credentials: 'same-origin', headers: { Accept: req.accept }, signal })
    const boundary = boundaryOf(resp.headers.get('Content-Type'))
    if (!resp.ok || !resp.body || !boundary) throw new Error(`pixeldata answered ${resp.status}`)
    const parser = new MultipartParser(boundary)
    const reader = resp.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      for (const part of parser.push(value)) {
        const key = keyOfLocation(part.headers['content-location'])
        const ts = partTransferSyntax(part.headers['content-type'])
        if (key && ts && store.isExpected(key)) {
          store.put(key, { pixelData: part.body, transferSyntaxUid: ts })
          received++
        }
      }
      await store.room(HELD_BYTES_MAX, mayOverfill)
    }
    parser.finish()
  } catch (err) {
    if (!signal?.aborted) console.warn('[viewer] bulk pixel data request failed; the frames are fetched one by one', err)
  } finally {
    for (const key of req.keys) store.settle(key)
  }
  return received
}

/**
 * Fetch the frames of `imageIds` (in that order) in a few bulk requests, PARALLEL at a time, into the store, where
 * the loader takes them. Resolves with the number of frames received when every request has ended. On abort the
 * frames not yet loaded are dropped.
 */
export async function fetchBulk(imageIds: string[], signal?: AbortSignal): Promise<number> {
  // frames another run is bringing (the series shown again while it loads) are not asked for twice
  const requests = planRequests(
    imageIds.filter((id) => {
      const key = keyOfImageId(id)
      return key && !store.isExpected(key) && !store.get(key)
    }),
  )
  for (const r of requests) for (const k of r.keys) store.expect(k)
  const finished = requests.map(() => false)
  const earliest = () => finished.indexOf(false)
  const onAbort = () => {
    for (const r of requests) for (const k of r.keys) store.release(k)
    store.wake()
  }
  signal?.addEventListener('abort', onAbort, { once: true })
  let next = 0
  let received = 0
  const worker = async () => {
    while (next < requests.length) {
      const i = next++
      if (signal?.aborted) {
        for (const k of requests[i].keys) store.settle(k)
      } else {
        const n = await readRequest(requests[i], signal, () => i <= earliest() || !!signal?.aborted)
        received += n // (never `received += await …`: the other worker's count would be lost)
      }
      finished[i] = true
      store.wake()
    }
  }
  await Promise.all(Array.from({ length: Math.min(PARALLEL, requests.length) }, worker))
  signal?.removeEventListener('abort', onAbort)
  return received
}
