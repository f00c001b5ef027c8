/**
 * The viewer's progressive preview (issue 16, UX R18: the first image within 300 ms of navigation start).
 *
 * A tiny, dependency-free module that index.html loads ahead of the app (its own entry, `<script type="module"
 * async>`: see web/vite.config.ts `bootEntry`; the strict CSP allows it, as no script is inline). Only on
 * `/viewer/studies/<uid>` it fetches, at once and in parallel, the study's series (QIDO-RS) and the study's instances
 * numbered 1 (QIDO-RS, `InstanceNumber=1`), then the server-rendered image (WADO-RS `rendered`, the image's own
 * default window) of the first instance of the first image series, and paints it over the viewport area: the real
 * slice, fitted like Cornerstone's stack viewport fits it, until Cornerstone has rendered the diagnostic image
 * (web/src/viewer/core/bootBridge.ts ends it). It also asks that series' metadata, which the viewer then takes
 * instead of asking again (as it takes the series list). Every request is one the viewer makes too, with the same session
 * cookie and `institution=`: the server's visibility rule answers them, so a study the user may not see gives a 404
 * and no preview (REQ: VIEW-01, DSEC — tests/e2e/test_viewer_preview.py).
 *
 * Nothing here may import the app (its own chunk must stay a few kB): the app talks to it through
 * `window.__teleradPreview` (types in ./previewTypes.ts).
 */
import type { BootPreview, PreviewProbe } from './previewTypes'

const NON_IMAGE = new Set(['SR', 'KO', 'PR', 'DOC', 'REG'])
/** The viewer page's chrome before the Vue app has laid it out (ViewerView's 33 px bar, StudyViewer's toolbar —
 * two rows on 1400–1920 px screens — and the 120 px series browser): where the viewport will be. Once the viewport
 * element exists the preview follows its box. */
export const ESTIMATED_CHROME = { top: 33 + 72, left: 121 }
export const VIEWPORT_SELECTOR = '[data-viewport-id]'

type Json = Record<string, { Value?: unknown[] }>

/** The study of a viewer URL, or null for any other page (the module then does nothing). */
export function matchViewer(pathname: string, search: string): { studyUid: string; institution?: string } | null {
  const m = /^\/viewer\/studies\/([^/?#]+)\/?$/.exec(pathname)
  if (!m) return null
  let studyUid: string
  try {
    studyUid = decodeURIComponent(m[1])
  } catch {
    return null
  }
  if (!/^[0-9.]{1,64}$/.test(studyUid)) return null
  const institution = new URLSearchParams(search).get('institution') || undefined
  return institution ? { studyUid, institution } : { studyUid }
}

function str(ds: Json | undefined, tag: string): string {
  const v = ds?.[tag]?.Value?.[0]
  return v === undefined || v === null ? '' : String(v)
}

function num(ds: Json | undefined, tag: string): number | undefined {
  const v = ds?.[tag]?.Value?.[0]
  const n = v === undefined || v === null || v === '' ? NaN : Number(v)
  return Number.isFinite(n) ? n : undefined
}

/** The viewer's first series: image series in series-number order (web/src/viewer/core/series.ts does the same). */
export function firstImageSeries(series: Json[]): { uid: string; modality: string } | null {
  const list = series
    .filter((ds) => !NON_IMAGE.has(str(ds, '00080060')))
    .map((ds) => ({ uid: str(ds, '0020000E'), modality: str(ds, '00080060'), n: num(ds, '00200011') ?? 1e9 }))
    .filter((s) => s.uid)
    .sort((a, b) => a.n - b.n)
  return list[0] ? { uid: list[0].uid, modality: list[0].modality } : null
}

/** Projection radiography and mammography: images of several thousand pixels a side, which the server shrinks to
 * the screen's viewport (`viewport=`) before sending. Cross-sectional images (CT 512², MR, US …) come at their own
 * size — asking a viewport would make the server scale them up and encode a larger JPEG — and the canvas scales. */
export const LARGE_IMAGE_MODALITIES = new Set(['CR', 'DX', 'MG', 'PX', 'IO', 'RG'])

/** The instance with the lowest InstanceNumber of `seriesUid` among QIDO instance results. */
export function firstInstance(instances: Json[], seriesUid: string): string | null {
  let best: { sop: string; n: number } | null = null
  for (const ds of instances) {
    const se = str(ds, '0020000E')
    if (se && se !== seriesUid) continue
    const sop = str(ds, '00080018')
    const n = num(ds, '00200013') ?? 1e9
    if (sop && (!best || n < best.n)) best = { sop, n }
  }
  return best?.sop ?? null
}

/** Where the image goes: a `w`×`h` image fitted into a box, centred, aspect kept (Cornerstone's default fit). */
export function fitRect(w: number, h: number, box: { width: number; height: number }) {
  const scale = Math.min(box.width / w, box.height / h)
  const dw = w * scale
  const dh = h * scale
  return { x: (box.width - dw) / 2, y: (box.height - dh) / 2, width: dw, height: dh }
}

interface Env {
  win: Window & typeof globalThis
  fetch: typeof fetch
  now: () => number
  decode: (blob: Blob) => Promise<ImageBitmap | HTMLImageElement>
}

function defaultEnv(): Env {
  return {
    win: window,
    fetch: window.fetch.bind(window),
    now: () => performance.now(),
    decode: (blob) => createImageBitmap(blob),
  }
}

/**
 * Start the preview for the page's URL; returns its handle (also `window.__teleradPreview`), or null elsewhere.
 */
export function startPreview(env: Env = defaultEnv()): BootPreview | null {
  const { win } = env
  const target = matchViewer(win.location.pathname, win.location.search)
  if (!target) return null
  const { studyUid, institution } = target
  const base = `/dicomweb/studies/${encodeURIComponent(studyUid)}`
  const q = (extra: Record<string, string> = {}) => {
    const p = new URLSearchParams(extra)
    if (institution) p.set('institution', institution)
    const s = p.toString()
    return s ? `?${s}` : ''
  }
  const getJson = async (url: string): Promise<Json[]> => {
    const r = await env.fetch(url, {
      credentials: 'same-origin',
      headers: { Accept: 'application/dicom+json' },
      priority: 'high',
    } as RequestInit)
    if (r.status === 204) return []
    if (!r.ok) throw new Error(`http_${r.status}`)
    return (await r.json()) as Json[]
  }

  let setMetadata: (m: { seriesUid: string; instances: Json[] } | null) => void = () => undefined
  let el: HTMLCanvasElement | null = null
  let frame = 0
  let ended = false
  const state: BootPreview = {
    studyUid,
    institution,
    series: getJson(`${base}/series${q()}`),
    sopUid: null,
    firstMetadata: new Promise((resolve) => (setMetadata = resolve)),
    paintedAt: null,
    settled: Promise.resolve(),
    ended: false,
    end(reason = 'replaced') {
      if (ended) return
      ended = true
      state.ended = reason
      if (frame) win.cancelAnimationFrame(frame)
      el?.remove()
      el = null
    },
  }
  state.series.catch(() => undefined)
  win.__teleradPreview = state

  const firsts = getJson(`${base}/instances${q({ InstanceNumber: '1' })}`).catch(() => [] as Json[])

  const run = (async () => {
    try {
      const series = await state.series
      const first = firstImageSeries(series)
      if (!first) return setMetadata(null)
      const seriesUid = first.uid
      let sop = firstInstance(await firsts, seriesUid)
      if (!sop) sop = firstInstance(await getJson(`${base}/series/${encodeURIComponent(seriesUid)}/instances${q()}`), seriesUid)
      if (!sop || ended) return setMetadata(null)
      state.sopUid = sop
      const url = `${base}/series/${encodeURIComponent(seriesUid)}/instances/${encodeURIComponent(sop)}/rendered${q(
        LARGE_IMAGE_MODALITIES.has(first.modality) ? viewportParam(win) : {},
      )}`
      const r = await env.fetch(url, { credentials: 'same-origin', headers: { Accept: 'image/jpeg' }, priority: 'high' } as RequestInit)
      // the first series' metadata next (the viewer needs it before Cornerstone can draw): asked once the server has
      // answered the preview (not competing with it), still long before the app's JavaScript has loaded
      getJson(`${base}/series/${encodeURIComponent(seriesUid)}/metadata${q()}`).then(
        (instances) => setMetadata({ seriesUid, instances }),
        () => setMetadata(null),
      )
      if (!r.ok || ended) return
      const img = await env.decode(await r.blob())
      if (ended || !matchesStill(win, studyUid)) return
      await bodyReady(win)
      if (ended) return
      paint(img)
    } catch {
      /* no preview: the viewer reports what went wrong when it asks itself */
      setMetadata(null)
    }
  })()
  state.settled = run

  function paint(img: ImageBitmap | HTMLImageElement): void {
    const doc = win.document
    el = doc.createElement('canvas')
    el.dataset.testid = 'viewer-preview'
    el.dataset.sopUid = state.sopUid ?? ''
    el.setAttribute('aria-hidden', 'true')
    // CSSOM, not a style attribute: the CSP has style-src 'self'
    Object.assign(el.style, { position: 'fixed', zIndex: '1', pointerEvents: 'none', background: '#000' })
    doc.body.appendChild(el)
    let last = ''
    const draw = () => {
      if (!el) return
      if (!matchesStill(win, studyUid)) {
        state.end('navigated')
        return
      }
      const box = boxOf(win)
      const dpr = win.devicePixelRatio || 1
      const key = `${box.left},${box.top},${box.width},${box.height},${dpr}`
      if (key !== last) {
        last = key
        Object.assign(el.style, {
          left: `${box.left}px`,
          top: `${box.top}px`,
          width: `${box.width}px`,
          height: `${box.height}px`,
        })
        el.width = Math.max(1, Math.round(box.width * dpr))
        el.height = Math.max(1, Math.round(box.height * dpr))
        const ctx = el.getContext('2d')
        if (ctx) {
          ctx.fillStyle = '#000'
          ctx.fillRect(0, 0, el.width, el.height)
          const f = fitRect(img.width, img.height, { width: el.width, height: el.height })
          ctx.imageSmoothingQuality = 'high'
          ctx.drawImage(img, f.x, f.y, f.width, f.height)
        }
      }
      frame = win.requestAnimationFrame(draw)
    }
    draw()
    // the time the study's first pixels are drawn (as the viewer stamps Cornerstone's IMAGE_RENDERED)
    const t = env.now()
    state.paintedAt = t
    const probe = (win.__teleradViewer ??= { stats: freshProbeStats(), scroll: () => undefined } as PreviewProbe)
    if (probe.stats.firstImageMs === null) probe.stats.firstImageMs = t
  }
  return state
}

function freshProbeStats(): PreviewProbe['stats'] {
  return {
    firstImageMs: null,
    firstDiagnosticImageMs: null,
    allImagesMs: null,
    viewportsShownMs: null,
    imagesTotal: 0,
    imagesCached: 0,
    decodeMsTotal: 0,
    fetchMsTotal: 0,
  }
}

function matchesStill(win: Window, studyUid: string): boolean {
  return matchViewer(win.location.pathname, win.location.search)?.studyUid === studyUid
}

/** The viewport's box: the viewer's first viewport element once it exists, else the estimate. */
function boxOf(win: Window): { left: number; top: number; width: number; height: number } {
  const vp = win.document.querySelector(VIEWPORT_SELECTOR)
  if (vp) {
    const r = vp.getBoundingClientRect()
    if (r.width > 0 && r.height > 0) return { left: r.left, top: r.top, width: r.width, height: r.height }
  }
  const w = win.innerWidth
  const h = win.innerHeight
  return {
    left: ESTIMATED_CHROME.left,
    top: ESTIMATED_CHROME.top,
    width: Math.max(1, w - ESTIMATED_CHROME.left),
    height: Math.max(1, h - ESTIMATED_CHROME.top),
  }
}

/** The viewport's size in device pixels, as `viewport=` for the server: a 3000×2400 DR comes shrunk to what the
 * screen shows (a JPEG of a sixth of the pixels). */
export function viewportParam(win: Window): Record<string, string> {
  const dpr = win.devicePixelRatio || 1
  const w = Math.round((win.innerWidth - ESTIMATED_CHROME.left) * dpr)
  const h = Math.round((win.innerHeight - ESTIMATED_CHROME.top) * dpr)
  if (w <= 0 || h <= 0) return {}
  return { viewport: `${Math.min(w, 4096)},${Math.min(h, 4096)}` }
}

function bodyReady(win: Window): Promise<void> {
  if (win.document.body) return Promise.resolve()
  return new Promise((resolve) => win.document.addEventListener('DOMContentLoaded', () => resolve(), { once: true }))
}
