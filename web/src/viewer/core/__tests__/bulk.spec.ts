// REQ: VIEW-01, UX R18 (issue 16) — a series' frames in a few bulk requests, handed to the wadors loader
import { metaData } from '@cornerstonejs/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import libraryRegistry from '../../../../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/imageLoader/wadors/loadImageFromRegistry.js?raw'
import libraryLoader from '../../../../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/imageLoader/wadors/loadImage.js?raw'
import libraryDecode from '../../../../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/imageLoader/decodeImageFrame.js?raw'
import libraryWorker from '../../../../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/decodeImageFrameWorker.js?raw'
import libraryPixelType from '../../../../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/imageLoader/setPixelDataType.js?raw'

// the library's loader needs web workers and codecs: the hook is checked against its source below, and a stand-in
// with the same call (metaData.getTyped('compressedFrameData', imageId, { frameIndex })) runs here
// the instances' metadata as series.ts adds it (Available Transfer Syntax UID, 0008,3002, names the stored syntax)
const instanceMeta = vi.hoisted(() => new Map<string, Record<string, { vr: string; Value: string[] }>>())
vi.mock('@cornerstonejs/dicom-image-loader', () => ({
  default: { wadors: { loadImage: vi.fn(), metaDataManager: { get: (id: string) => instanceMeta.get(id) } } },
}))

const { bulkAwareLoader, fetchBulk, frameProvider, FIRST_CHUNK, installBulkLoader, planRequests, store, URL_BUDGET } =
  await import('../bulk')
installBulkLoader() // the provider, in front of the others
const { ACCEPT_AS_STORED, ACCEPT_UNCOMPRESSED_FIRST, EXPLICIT_VR_LE, setBandwidthMode } = await import('../frameSyntax')
const { acceptForImage } = await import('../frameAccept')
const JLL = '1.2.840.10008.1.2.4.70'

const ORIGIN = 'http://viewer.test'
const STUDY = '1.2.3'
const SERIES = '1.2.3.4'
const sop = (i: number) => `1.2.826.0.1.3680043.8.498.${1000000 + i}`
const imageId = (i: number, frame = 1, q = '?institution=M01') =>
  `wadors:${ORIGIN}/dicomweb/studies/${STUDY}/series/${SERIES}/instances/${sop(i)}/frames/${frame}${q}`
const pixels = (i: number, frame = 1) => new Uint8Array(Array.from({ length: 64 }, (_, k) => (i * 3 + frame * 5 + k) & 0xff))

function multipart(frames: [number, number][], boundary = 'bnd', syntaxOf: (i: number) => string = () => EXPLICIT_VR_LE): Uint8Array {
  const chunks: Uint8Array[] = []
  const enc = new TextEncoder()
  for (const [i, f] of frames) {
    const loc = `${ORIGIN}/dicomweb/studies/${STUDY}/series/${SERIES}/instances/${sop(i)}/frames/${f}`
    const head = `--${boundary}\r\nContent-Type: application/octet-stream; transfer-syntax=${syntaxOf(i)}\r\nContent-Location: ${loc}\r\nContent-Length: 64\r\n\r\n`
    chunks.push(enc.encode(head), pixels(i, f), enc.encode('\r\n'))
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`))
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

/** A streamed answer, cut into 50-byte reads (inside boundaries, headers and payloads). */
function streamed(data: Uint8Array, status = 200): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < data.length; i += 50) c.enqueue(data.slice(i, i + 50))
      c.close()
    },
  })
  return new Response(body, { status, headers: { 'Content-Type': 'multipart/related; type="application/octet-stream"; boundary=bnd' } })
}

/** The library's wadors loader as far as the hook goes: the frame's bytes from the metadata providers, else a
 * request of its own (recorded). */
function standIn(fetched: string[]) {
  return (id: string) => {
    const frameIndex = Number(id.match(/\/frames\/(\d+)/)![1]) - 1
    const data = metaData.getTyped('compressedFrameData', id, { frameIndex }) as { pixelData: Uint8Array; transferSyntaxUid: string } | undefined
    if (!data) fetched.push(id)
    return { promise: Promise.resolve({ imageId: id, bytes: data?.pixelData, ts: data?.transferSyntaxUid }), cancelFn: undefined }
  }
}

afterEach(() => {
  vi.unstubAllGlobals()
  instanceMeta.clear()
  setBandwidthMode('auto')
})

describe('view01 bulk frames', () => {
  it('plans a small first request, then as many instances as the URL allows, in the viewer order', () => {
    const ids = Array.from({ length: 300 }, (_, i) => imageId(299 - i))
    const reqs = planRequests(ids)
    const first = new URL(reqs[0].url, ORIGIN)
    expect(first.pathname).toBe(`/dicomweb/studies/${STUDY}/series/${SERIES}/pixeldata`)
    expect(first.searchParams.get('institution')).toBe('M01')
    expect(first.searchParams.get('instances')!.split(',')).toEqual([299, 298, 297, 296].map(sop))
    expect(reqs[0].keys).toHaveLength(FIRST_CHUNK)
    for (const r of reqs.slice(1)) expect(new URL(r.url, ORIGIN).searchParams.get('instances')!.length).toBeLessThanOrEqual(URL_BUDGET)
    expect(reqs.flatMap((r) => r.keys)).toEqual(Array.from({ length: 300 }, (_, i) => `${sop(299 - i)}/1`))
    // the frames of a multi-frame instance: one instance, every frame
    const multi = planRequests([imageId(1, 1), imageId(1, 2), imageId(1, 3)])
    expect(multi).toHaveLength(1)
    expect(multi[0].keys).toEqual([1, 2, 3].map((f) => `${sop(1)}/${f}`))
  })

  it('hands each frame to the loader without a request of its own, and drops it once loaded', async () => {
    const ids = [imageId(1), imageId(2, 1), imageId(2, 2), imageId(3), imageId(4), imageId(5), imageId(6)]
    const urls: string[] = []
    vi.stubGlobal('fetch', vi.fn(async (url: string) => {
      urls.push(url)
      const listed = new URL(url, ORIGIN).searchParams.get('instances')!.split(',')
      const frames = ids.map((id) => id.match(/instances\/([^/]+)\/frames\/(\d+)/)!).filter((m) => listed.includes(m[1]))
      return streamed(multipart(frames.map((m) => [Number(m[1].split('.').pop()) - 1000000, Number(m[2])])))
    }))
    const fetched: string[] = []
    const wadors = standIn(fetched)
    // the loader asks before the bytes are in (as prefetch.ts does: the run started, then the loads): it waits
    const run = fetchBulk(ids)
    const loads = ids.map((id) => bulkAwareLoader(id, {}, wadors as never).promise)
    expect(await run).toBe(ids.length)
    const images = (await Promise.all(loads)) as unknown as { imageId: string; bytes: Uint8Array; ts: string }[]
    expect(urls).toHaveLength(2) // FIRST_CHUNK instances, then the rest: never a request per frame
    expect(fetched).toEqual([])
    expect(images[2].bytes).toEqual(pixels(2, 2))
    expect(images[0].ts).toBe('1.2.840.10008.1.2.1')
    expect(store.held).toBe(0)
    expect(frameProvider('compressedFrameData', ids[0])).toBeUndefined()
  })

  it('falls back to a request per frame when the bulk request fails or leaves frames out', async () => {
    const ids = [imageId(11), imageId(12), imageId(13)]
    vi.stubGlobal('fetch', vi.fn(async () => streamed(multipart([[11, 1]]).subarray(0, 90))))
    const fetched: string[] = []
    const run = fetchBulk(ids)
    const loads = ids.map((id) => bulkAwareLoader(id, {}, standIn(fetched) as never).promise)
    await run
    await Promise.all(loads)
    expect(fetched.sort()).toEqual([...ids].sort()) // the answer was cut short inside the first part
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{"code":"not_found"}', { status: 404 })))
    const again: string[] = []
    const ids2 = [imageId(21)]
    const run2 = fetchBulk(ids2)
    const p = bulkAwareLoader(ids2[0], {}, standIn(again) as never).promise
    await run2
    await p
    expect(again).toEqual(ids2)
    expect(store.held).toBe(0)
  })

  it('fetches alone at once what the viewport asks for ahead of the bulk requests, and keeps no copy of it', async () => {
    const ids = [imageId(31), imageId(32)]
    vi.stubGlobal('fetch', vi.fn(async () => streamed(multipart([[31, 1], [32, 1]]))))
    const fetched: string[] = []
    const run = fetchBulk(ids)
    const viewport = bulkAwareLoader(ids[1], { requestType: 'interaction' }, standIn(fetched) as never).promise
    expect(fetched).toEqual([ids[1]]) // not queued behind the bulk request
    const other = bulkAwareLoader(ids[0], {}, standIn(fetched) as never).promise
    await run
    await Promise.all([viewport, other])
    expect(fetched).toEqual([ids[1]])
    expect(store.held).toBe(0) // the part that came for it anyway was not kept
    // a run for frames another run is bringing does not ask for them again
    vi.stubGlobal('fetch', vi.fn(async () => streamed(multipart([[41, 1]]))))
    const first = fetchBulk([imageId(41)])
    expect(await fetchBulk([imageId(41)])).toBe(0)
    expect(await first).toBe(1)
    await bulkAwareLoader(imageId(41), {}, standIn(fetched) as never).promise
    expect(store.held).toBe(0)
  })

  it('asks with the per-frame rule: a JPEG-lossless series uncompressed on a LAN, as stored on a WAN', async () => {
    const stored = (i: number) => (i <= 53 ? JLL : EXPLICIT_VR_LE) // 51-53 JPEG lossless, 54 uncompressed
    const ids = [51, 52, 53, 54].map((i) => imageId(i))
    for (const [k, id] of ids.entries()) instanceMeta.set(id, { '00083002': { vr: 'UI', Value: [stored(51 + k)] } })
    setBandwidthMode('lan')
    const lan = planRequests(ids)
    // a request per stored form, each with the Accept header a frame of it fetched alone gets (init.ts beforeSend)
    expect(lan.map((r) => [r.accept, r.keys])).toEqual([
      [ACCEPT_UNCOMPRESSED_FIRST, [51, 52, 53].map((i) => `${sop(i)}/1`)],
      [ACCEPT_AS_STORED, [`${sop(54)}/1`]],
    ])
    const acceptOfKey = new Map(lan.flatMap((r) => r.keys.map((k) => [k, r.accept] as const)))
    for (const [k, id] of ids.entries()) expect(acceptOfKey.get(`${sop(51 + k)}/1`)).toBe(acceptForImage(id))
    setBandwidthMode('wan')
    expect(planRequests(ids).map((r) => r.accept)).toEqual([ACCEPT_AS_STORED]) // one request: fewest bytes
    // on a LAN the server decodes: the loader gets uncompressed bytes (no JPEG decode in the browser); a frame the
    // server sent as stored (its decoders busy: the q=0.5 fallback) keeps its JPEG-lossless label
    setBandwidthMode('lan')
    const asked: [string, string][] = []
    vi.stubGlobal('fetch', vi.fn(async (url: string, init: RequestInit) => {
      const listed = new URL(url, ORIGIN).searchParams.get('instances')!.split(',')
      asked.push([listed.join(','), (init.headers as Record<string, string>).Accept])
      const frames = listed.map((u) => [Number(u.split('.').pop()) - 1000000, 1] as [number, number])
      return streamed(multipart(frames, 'bnd', (i) => (i === 53 ? JLL : EXPLICIT_VR_LE)))
    }))
    const fetched: string[] = []
    const run = fetchBulk(ids)
    const loads = ids.map((id) => bulkAwareLoader(id, {}, standIn(fetched) as never).promise)
    expect(await run).toBe(4)
    const images = (await Promise.all(loads)) as unknown as { bytes: Uint8Array; ts: string }[]
    expect(asked).toEqual([
      [[51, 52, 53].map(sop).join(','), ACCEPT_UNCOMPRESSED_FIRST],
      [sop(54), ACCEPT_AS_STORED],
    ])
    expect(fetched).toEqual([])
    expect(images.map((im) => im.ts)).toEqual([EXPLICIT_VR_LE, EXPLICIT_VR_LE, JLL, EXPLICIT_VR_LE])
    expect(images[1].bytes).toEqual(pixels(52))
    expect(store.held).toBe(0)
  })

  it('asks as stored when the metadata names no stored syntax (another archive)', () => {
    setBandwidthMode('lan')
    expect(planRequests([imageId(61)]).map((r) => r.accept)).toEqual([ACCEPT_AS_STORED])
  })

  it('lets the decode worker take a received frame\'s bytes (transferred), and counts what it holds all the same', async () => {
    const ids = [imageId(71), imageId(72)]
    vi.stubGlobal('fetch', vi.fn(async () => streamed(multipart([[71, 1], [72, 1]]))))
    const asked: Record<string, unknown>[] = []
    // the library's decode call as patched: the bytes posted to the worker with their buffer in the transfer list,
    // which leaves them detached (empty) here while the frame is still in the store
    const transferring = (id: string, options: Record<string, unknown>) => {
      asked.push(options)
      const frameIndex = Number(id.match(/\/frames\/(\d+)/)![1]) - 1
      const data = metaData.getTyped('compressedFrameData', id, { frameIndex }) as { pixelData: Uint8Array } | undefined
      const sent = data && options.transferPixelData ? structuredClone(data.pixelData, { transfer: [data.pixelData.buffer] }) : undefined
      expect(data?.pixelData.byteLength).toBe(0)
      return { promise: Promise.resolve({ imageId: id, bytes: sent }), cancelFn: undefined }
    }
    const run = fetchBulk(ids)
    const loads = ids.map((id) => bulkAwareLoader(id, { priority: 3 }, transferring as never).promise)
    await run
    const images = (await Promise.all(loads)) as unknown as { bytes: Uint8Array }[]
    expect(Array.from(images[1].bytes)).toEqual(Array.from(pixels(72))) // (structuredClone: another realm's array)
    expect(asked).toEqual([{ priority: 3, transferPixelData: true }, { priority: 3, transferPixelData: true }])
    expect(store.held).toBe(0) // the sizes taken when the frames came, not their (now empty) arrays
    // a frame the bulk request did not bring is fetched by the loader, whose bytes are not the store's to give
    const fetched: string[] = []
    vi.stubGlobal('fetch', vi.fn(async () => new Response('', { status: 503 })))
    const run2 = fetchBulk([imageId(73)])
    const plain: Record<string, unknown>[] = []
    const p = bulkAwareLoader(imageId(73), {}, ((id: string, o: Record<string, unknown>) => {
      plain.push(o)
      return standIn(fetched)(id)
    }) as never).promise
    await run2
    await p
    expect(fetched).toEqual([imageId(73)])
    expect(plain).toEqual([{}])
  })

  it('has the library transfer the pixel data both ways (patches/@cornerstonejs+dicom-image-loader+5.14.0.patch)', () => {
    expect(libraryDecode).toContain('options.transferPixelData && ownsWholeBuffer(pixelData)')
    expect(libraryDecode).toContain('transferList ? transfer(args, transferList) : args')
    expect(libraryWorker).toContain('.then(transferPixelData)')
  })

  it('keeps the decoded pixels the worker sends when they are of the type their range needs (no copy)', async () => {
    expect(libraryPixelType).toContain('pixelData instanceof TypedArray &&')
    const { default: setPixelDataType } = await import(
      '../../../../node_modules/@cornerstonejs/dicom-image-loader/dist/esm/imageLoader/setPixelDataType.js'
    )
    const ct = { smallestPixelValue: -1024, largestPixelValue: 3071, pixelData: new Int16Array([-1024, 0, 3071]) }
    const sent = ct.pixelData
    setPixelDataType(ct)
    expect(ct.pixelData).toBe(sent)
    // another type, or a view into a larger buffer: a typed copy, as before
    const small = { smallestPixelValue: 0, largestPixelValue: 200, pixelData: new Int16Array([0, 100, 200]) }
    setPixelDataType(small)
    expect(small.pixelData).toBeInstanceOf(Uint8Array)
    expect(Array.from(small.pixelData)).toEqual([0, 100, 200])
    const view = { smallestPixelValue: 0, largestPixelValue: 300, pixelData: new Uint16Array(new ArrayBuffer(16), 2, 3) }
    view.pixelData.set([1, 2, 300])
    setPixelDataType(view)
    expect(view.pixelData.byteOffset).toBe(0)
    expect(Array.from(view.pixelData)).toEqual([1, 2, 300])
  })

  it('uses the hook the dicom-image-loader 5.14 has: compressedFrameData asked before any request', () => {
    expect(libraryRegistry).toContain('metaData.getTyped(COMPRESSED_FRAME_DATA, imageId')
    expect(libraryRegistry).toContain('createImage(imageId, concatenated, transferSyntaxUid, options)')
    expect(libraryLoader).toContain('loadImageFromCompressedFrameRegistry(imageId, options)')
    expect(libraryLoader).toContain('falling back to network retrieval')
  })
})
