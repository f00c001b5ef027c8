// REQ: VIEW-01 (UX R18): the boot preview — which URLs it acts on, which image it asks for, that it asks only the
// DICOMweb resources the viewer asks (same visibility), and that it goes when the diagnostic image is rendered.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { firstImageSeries, firstInstance, fitRect, matchViewer, startPreview } from '../preview'
import { adoptPreview, diagnosticRendered, expectFirstImage, previewSettled, takeBootSeries } from '@/viewer/core/bootBridge'
import { freshStats } from '@/viewer/core/stats'

const STUDY = '1.2.840.99.1'
const SE1 = '1.2.840.99.1.1'
const SE2 = '1.2.840.99.1.2'
const SR = '1.2.840.99.1.9'

const series = [
  { '0020000E': { Value: [SE2] }, '00080060': { Value: ['CT'] }, '00200011': { Value: [2] } },
  { '0020000E': { Value: [SR] }, '00080060': { Value: ['SR'] }, '00200011': { Value: [0] } },
  { '0020000E': { Value: [SE1] }, '00080060': { Value: ['CT'] }, '00200011': { Value: [1] } },
]
const firsts = [
  { '0020000E': { Value: [SE2] }, '00080018': { Value: ['2.1'] }, '00200013': { Value: [1] } },
  { '0020000E': { Value: [SE1] }, '00080018': { Value: ['1.1'] }, '00200013': { Value: [1] } },
]

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/dicom+json' } })
}

describe('matchViewer', () => {
  it('takes the study of a viewer URL and its institution', () => {
    expect(matchViewer(`/viewer/studies/${STUDY}`, '')).toEqual({ studyUid: STUDY })
    expect(matchViewer(`/viewer/studies/${STUDY}/`, '?institution=M01')).toEqual({ studyUid: STUDY, institution: 'M01' })
  })
  it('is null everywhere else', () => {
    for (const p of ['/', '/login', '/viewer/window', `/viewer/studies/${STUDY}/series`, '/viewer/studies/', '/worklist']) {
      expect(matchViewer(p, '')).toBeNull()
    }
    expect(matchViewer('/viewer/studies/%E0%A4%A', '')).toBeNull() // malformed escape
    expect(matchViewer('/viewer/studies/abc', '')).toBeNull() // not a UID
  })
})

describe('choosing the image', () => {
  it('takes the first image series by number, never an SR', () => {
    expect(firstImageSeries(series)).toEqual({ uid: SE1, modality: 'CT' })
    expect(firstImageSeries([series[1]])).toBeNull()
  })
  it('takes the lowest instance number of that series', () => {
    expect(firstInstance(firsts, SE1)).toBe('1.1')
    const list = [
      { '00080018': { Value: ['x.3'] }, '00200013': { Value: [3] } },
      { '00080018': { Value: ['x.2'] }, '00200013': { Value: [2] } },
    ]
    expect(firstInstance(list, SE1)).toBe('x.2')
    expect(firstInstance(firsts, '9.9')).toBeNull()
  })
  it('fits the image like the stack viewport: centred, aspect kept', () => {
    expect(fitRect(512, 512, { width: 1000, height: 500 })).toEqual({ x: 250, y: 0, width: 500, height: 500 })
    expect(fitRect(2400, 3000, { width: 800, height: 2000 })).toEqual({ x: 0, y: 500, width: 800, height: 1000 })
  })
})

describe('startPreview', () => {
  let calls: string[]
  let rafs: FrameRequestCallback[]

  beforeEach(() => {
    calls = []
    rafs = []
    document.body.innerHTML = ''
    delete window.__teleradPreview
    delete window.__teleradViewer
    vi.spyOn(window, 'requestAnimationFrame').mockImplementation((cb) => {
      rafs.push(cb)
      return rafs.length
    })
    vi.spyOn(window, 'cancelAnimationFrame').mockImplementation(() => undefined)
    // jsdom has no 2D canvas: a context that records the drawImage
    vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockImplementation(function (this: HTMLCanvasElement) {
      return { fillRect: () => undefined, drawImage: () => undefined, fillStyle: '', imageSmoothingQuality: '' } as never
    })
  })
  afterEach(() => {
    vi.restoreAllMocks()
    history.replaceState(null, '', '/')
  })

  function env(fetchImpl: (url: string) => Promise<Response>) {
    return {
      win: window,
      fetch: ((url: string) => {
        calls.push(url)
        return fetchImpl(url)
      }) as typeof fetch,
      now: () => 123.4,
      decode: async () => ({ width: 512, height: 512 }) as ImageBitmap,
    }
  }

  const serving = async (url: string) => {
    if (url.includes('/series?') || url.endsWith('/series')) return json(series)
    if (url.includes('/instances?InstanceNumber=1')) return json(firsts)
    if (url.includes('/rendered')) return new Response(new Blob([new Uint8Array([1, 2, 3])]), { status: 200 })
    if (url.includes('/metadata')) return json([{ meta: 1 }])
    return json({}, 404)
  }

  async function settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0))
  }

  it('does nothing off the viewer URL', async () => {
    history.replaceState(null, '', '/worklist')
    expect(startPreview(env(serving))).toBeNull()
    await settle()
    expect(calls).toEqual([])
    expect(window.__teleradPreview).toBeUndefined()
  })

  it('paints the first instance of the first series, asked with the institution, and stamps the stats', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}?institution=M01`)
    const p = startPreview(env(serving))!
    await settle()
    expect(calls[0]).toBe(`/dicomweb/studies/${STUDY}/series?institution=M01`)
    expect(calls[1]).toBe(`/dicomweb/studies/${STUDY}/instances?InstanceNumber=1&institution=M01`)
    // a CT at its own size (no viewport=: the server would scale it up)
    expect(calls[2]).toBe(`/dicomweb/studies/${STUDY}/series/${SE1}/instances/1.1/rendered?institution=M01`)
    expect(calls).toHaveLength(4) // and the first series' metadata, for the viewer
    const el = document.querySelector<HTMLCanvasElement>('[data-testid="viewer-preview"]')!
    expect(el).not.toBeNull()
    expect(el.dataset.sopUid).toBe('1.1')
    expect(p.paintedAt).toBe(123.4)
    expect(window.__teleradViewer?.stats.firstImageMs).toBe(123.4)

    // the viewer starts: it reuses the series list, adopts the paint time, and the first render removes the preview
    const s = takeBootSeries(STUDY, 'M01')
    expect(s).not.toBeNull()
    expect(await s!.series).toHaveLength(3)
    expect(await s!.firstMetadata).toEqual({ seriesUid: SE1, instances: [{ meta: 1 }] })
    expect(calls[3]).toBe(`/dicomweb/studies/${STUDY}/series/${SE1}/metadata?institution=M01`)
    expect(takeBootSeries(STUDY, 'M01')).toBeNull() // once
    const stats = freshStats()
    adoptPreview(stats, STUDY, 'M01')
    expect(stats.firstImageMs).toBe(123.4)
    diagnosticRendered(stats, 900)
    expect(stats.firstDiagnosticImageMs).toBe(900)
    expect(stats.firstImageMs).toBe(123.4)
    expect(document.querySelector('[data-testid="viewer-preview"]')).toBeNull()
    expect(p.ended).toBe('replaced')
    const later = freshStats() // the viewer opened again in the same page: its own figures
    adoptPreview(later, STUDY, 'M01')
    expect(later.firstImageMs).toBeNull()
  })

  it('holds Cornerstone back until the preview is painted, never longer than the cap', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}`)
    await previewSettled(STUDY, undefined) // no preview at all: at once
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    const p = startPreview(env(async (url) => (url.includes('/rendered') ? gate.then(() => serving(url)) : serving(url))))!
    let done = false
    void previewSettled(STUDY, undefined, 10_000).then(() => (done = true))
    await settle()
    expect(done).toBe(false)
    release()
    await settle()
    expect(p.paintedAt).not.toBeNull()
    expect(done).toBe(true)
    await previewSettled(STUDY, undefined) // painted: at once
    // a preview that never comes: the cap
    delete window.__teleradPreview
    startPreview(env(() => new Promise<Response>(() => undefined)))
    const t0 = Date.now()
    await previewSettled(STUDY, undefined, 50)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45)
  })

  it('follows the viewport element once the viewer lays it out', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}`)
    startPreview(env(serving))
    await settle()
    const vp = document.createElement('div')
    vp.dataset.viewportId = 'vp-0'
    vi.spyOn(vp, 'getBoundingClientRect').mockReturnValue({ left: 121, top: 80, width: 700, height: 600 } as DOMRect)
    document.body.appendChild(vp)
    rafs.shift()!(0)
    const el = document.querySelector<HTMLCanvasElement>('[data-testid="viewer-preview"]')!
    expect([el.style.left, el.style.top, el.style.width, el.style.height]).toEqual(['121px', '80px', '700px', '600px'])
  })

  it('goes when the viewer will show another instance first, or the page leaves the study', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}`)
    let p = startPreview(env(serving))!
    await settle()
    expectFirstImage(STUDY, undefined, '1.1')
    expect(p.ended).toBe(false)
    expectFirstImage(STUDY, undefined, '1.7')
    expect(p.ended).toBe('other-image')
    expect(document.querySelector('[data-testid="viewer-preview"]')).toBeNull()

    p = startPreview(env(serving))!
    await settle()
    history.replaceState(null, '', '/worklist')
    rafs.pop()!(0)
    expect(p.ended).toBe('navigated')
    expect(document.querySelector('[data-testid="viewer-preview"]')).toBeNull()
  })

  it('shows nothing when the server refuses the study (404: not visible), and the viewer asks again itself', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}`)
    const p = startPreview(env(async () => json({ code: 'not_found' }, 404)))!
    await settle()
    expect(calls.some((u) => u.includes('/rendered'))).toBe(false)
    expect(document.querySelector('[data-testid="viewer-preview"]')).toBeNull()
    expect(p.paintedAt).toBeNull()
    expect(window.__teleradViewer).toBeUndefined()
    const taken = takeBootSeries(STUDY)!
    await expect(taken.series).rejects.toThrow('http_404')
    expect(await taken.firstMetadata).toBeNull()
  })

  it('asks a DR shrunk to the viewport', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}`)
    const dx = [{ '0020000E': { Value: [SE1] }, '00080060': { Value: ['DX'] }, '00200011': { Value: [1] } }]
    startPreview(env(async (url) => (url.endsWith('/series') ? json(dx) : serving(url))))
    await settle()
    expect(calls.find((u) => u.includes('/rendered'))).toMatch(/\/instances\/1\.1\/rendered\?viewport=\d+%2C\d+$/)
  })

  it('asks the series instances when no instance is numbered 1', async () => {
    history.replaceState(null, '', `/viewer/studies/${STUDY}`)
    startPreview(
      env(async (url) => {
        if (url.includes('InstanceNumber=1')) return new Response(null, { status: 204 })
        if (url.endsWith(`/series/${SE1}/instances`))
          return json([
            { '00080018': { Value: ['1.5'] }, '00200013': { Value: [5] } },
            { '00080018': { Value: ['1.0'] }, '00200013': { Value: [0] } },
          ])
        return serving(url)
      }),
    )
    await settle()
    expect(calls.find((u) => u.includes('/rendered'))).toContain('/instances/1.0/rendered')
    expect(document.querySelector<HTMLCanvasElement>('[data-testid="viewer-preview"]')!.dataset.sopUid).toBe('1.0')
  })
})
