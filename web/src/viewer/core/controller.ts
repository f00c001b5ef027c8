/**
 * One StudyViewer's engine room (REQ: VIEW-01/02/05/06/07/12/16): the rendering engine and tool group, the
 * viewports of the current layout and the series each shows, whole-series decoding with progress, the W/L, VOI,
 * colour, orientation and cine state of the active viewport, and the performance probe. The Vue component binds to
 * `state` and calls the methods; nothing here touches Vue components.
 */
import { reactive } from 'vue'
import { Enums, RenderingEngine, type Types, cache } from '@cornerstonejs/core'
import { ToolGroupManager, annotation, utilities as toolUtils } from '@cornerstonejs/tools'
import { i18n } from '@/i18n'
import type { ActiveImage, ViewerContext } from '../extensions'
import { DicomwebError, parseImageId, type SeriesInfo } from './dicomweb'
import { adoptPreview, diagnosticRendered, endPreview, expectFirstImage } from './bootBridge'
import { takeEarly } from './early'
import { initCornerstone } from './init'
import { takePrefetched } from './nextExam'
import { type HangingCell, initialHanging } from './hanging'
import { loadOpeningImages, openingImageIds } from './firstImages'
import { type Layout, assignSeries, clampLayout, viewportCount } from './layouts'
import { cacheImages } from './prefetch'
import { buildSeries, isImageSeries, loadSeries, loadSeriesList, type ViewerSeries } from './series'
import { photometricOf, readPixel } from './pixelProbe'
import { installProbe, type ViewerStats } from './stats'
import { registerSuvProvider } from './suvProvider'
import { type TextPrompt, type ToolId, createToolGroup, setMeasurementValuesVisible, setPrimaryTool } from './tools'
import { shownInvert, type VoiFunction, type WindowPreset, toRange, toWindow } from './voi'

let seq = 0

export interface SeriesState extends SeriesInfo {
  loaded: boolean
  done: number
  total: number
  failed: number
}

export interface ViewportState {
  id: string
  seriesUid: string | null
  index: number
  total: number
  center: number | null
  width: number | null
  zoom: number
}

export interface CineState {
  playing: boolean
  fps: number
  reverse: boolean
  loop: boolean
}

export class ViewerController {
  readonly renderingEngineId: string
  readonly toolGroupId: string
  readonly state = reactive({
    status: 'loading' as 'loading' | 'ready' | 'error',
    error: '',
    notVisible: false,
    series: [] as SeriesState[],
    layout: { rows: 1, cols: 1 } as Layout,
    viewports: [] as ViewportState[],
    active: 0,
    tool: 'wl' as ToolId,
    invert: false,
    voiFunction: 'LINEAR' as VoiFunction,
    colormap: null as string | null,
    showValues: true,
    showOverlay: true,
    cine: { playing: false, fps: 15, reverse: false, loop: true } as CineState,
  })
  readonly stats: ViewerStats
  private engine: RenderingEngine | null = null
  private group: ReturnType<typeof createToolGroup> | null = null
  private loaded = new Map<string, ViewerSeries>()
  private loading = new Map<string, Promise<ViewerSeries>>()
  private elements = new Map<string, HTMLDivElement>()
  private abort = new AbortController()
  private imageListeners = new Set<(img: ActiveImage) => void>()
  private renderListeners = new Set<(viewportId: string) => void>()
  private cleanups: (() => void)[] = []
  private destroyed = false

  constructor(
    readonly studyUid: string,
    readonly institution: string | undefined,
    private readonly prompt: TextPrompt,
  ) {
    const n = ++seq
    this.renderingEngineId = `telerad-re-${n}`
    this.toolGroupId = `telerad-tg-${n}`
    this.stats = installProbe(
      (k) => this.scroll(k),
      (x, y, i = this.state.active) => {
        const vp = this.stackViewport(this.state.viewports[i]?.id ?? '')
        return vp ? readPixel(vp, x, y) : null
      },
    )
    adoptPreview(this.stats, studyUid, institution)
  }

  // ---- loading -----------------------------------------------------------------------------------------------
  /** Fetch the series list and the first series' metadata while Cornerstone initialises. */
  async start(): Promise<void> {
    const signal = this.abort.signal
    try {
      const early = takeEarly(this.studyUid, this.institution)
      const pre = takePrefetched(this.studyUid, this.institution) // UX R18: the worklist's next exam, fetched ahead
      const [list] = await Promise.all([
        early?.series ?? pre?.list ?? loadSeriesList(this.studyUid, this.institution, signal),
        initCornerstone(),
      ])
      registerSuvProvider() // REQ: VIEW-08 — PET ROI statistics in SUV where the tags allow
      if (this.destroyed) return
      if (!list.length) throw new DicomwebError(404, 'no_series', i18n.global.t('viewer.noSeries'))
      this.state.series = list.map((s) => ({ ...s, loaded: false, done: 0, total: s.instanceCount, failed: 0 }))
      // the first series' metadata, fetched while the viewer's code loaded (after init: it registers the loaders)
      const m = early ? await early.firstMetadata.catch(() => null) : null
      const info = m ? list.find((s) => s.seriesUid === m.seriesUid) : undefined
      if (m && info && !this.loading.has(info.seriesUid)) {
        const s = this.seriesLoaded(buildSeries(info, m.instances, this.studyUid, this.institution))
        this.loading.set(info.seriesUid, Promise.resolve(s))
      }
      for (const s of pre?.series ?? []) {
        if (!this.loading.has(s.seriesUid)) this.loading.set(s.seriesUid, Promise.resolve(this.seriesLoaded(s)))
      }
      // the opening images are fetched and decoded while the engine, the tool group and the viewports are made; a
      // series of the layout whose metadata is not in (a 2-view DR in two series) has it asked now, its image next
      const cells = this.hang()
      for (const c of cells.filter((x) => !this.loaded.has(x.seriesUid))) {
        this.ensureSeries(c.seriesUid).then(
          (s) => loadOpeningImages(openingImageIds([c], () => s.images.map((i) => i.imageId))),
          () => undefined, // show() reports it
        )
      }
      await loadOpeningImages(openingImageIds(cells, (uid) => this.loaded.get(uid)?.images.map((i) => i.imageId)))
      if (this.destroyed) return
      this.engine = new RenderingEngine(this.renderingEngineId)
      this.group = createToolGroup(this.toolGroupId, this.prompt)
      this.state.status = 'ready'
    } catch (e) {
      if (this.destroyed) return
      endPreview('error')
      this.state.status = 'error'
      this.state.notVisible = e instanceof DicomwebError && e.notVisible
      this.state.error = e instanceof Error ? e.message : String(e)
    }
  }

  /** The initial layout for the study's image series (./hanging.ts): 1×1 for one stack, both images of a 2-image
   * study side by side, a viewport a series for a few series. */
  private hang(): HangingCell[] {
    const uids = this.seriesUids()
    const h = initialHanging(uids.map((u) => ({ seriesUid: u, instanceCount: this.seriesState(u)?.instanceCount ?? 0 })))
    const n = viewportCount(h.layout)
    this.state.layout = h.layout
    this.state.viewports = this.makeViewports(Array.from({ length: n }, (_, i) => h.cells[i]?.seriesUid ?? null))
    h.cells.forEach((c, i) => (this.state.viewports[i].index = c.index))
    return h.cells
  }

  /** The series that can be shown in a viewport (not SR, KO, PR …), in browser order. */
  seriesUids(): string[] {
    return this.state.series.filter((s) => isImageSeries(s.modality)).map((s) => s.seriesUid)
  }

  seriesState(uid: string): SeriesState | undefined {
    return this.state.series.find((s) => s.seriesUid === uid)
  }

  getSeries(uid: string): ViewerSeries | undefined {
    return this.loaded.get(uid)
  }

  private ensureSeries(uid: string): Promise<ViewerSeries> {
    let job = this.loading.get(uid)
    if (!job) {
      const info = this.seriesState(uid)!
      job = loadSeries(info, this.studyUid, this.institution, this.abort.signal).then((s) => this.seriesLoaded(s))
      this.loading.set(uid, job)
    }
    return job
  }

  private seriesLoaded(s: ViewerSeries): ViewerSeries {
    this.loaded.set(s.seriesUid, s)
    const st = this.seriesState(s.seriesUid)
    if (st) {
      st.loaded = true
      st.total = s.images.length
      st.number ??= s.number
      st.description ||= s.description
      st.modality ||= s.modality
    }
    return s
  }

  private makeViewports(assigned: (string | null)[]): ViewportState[] {
    const old = this.state.viewports
    return assigned.map((seriesUid, i) => {
      const prev = old[i]
      if (prev && prev.seriesUid === seriesUid) return prev
      return {
        id: `${this.renderingEngineId}-vp-${i}`,
        seriesUid,
        index: 0,
        total: seriesUid ? (this.loaded.get(seriesUid)?.images.length ?? this.seriesState(seriesUid)?.total ?? 0) : 0,
        center: null,
        width: null,
        zoom: 1,
      }
    })
  }

  // ---- viewports ---------------------------------------------------------------------------------------------
  /** The component hands over the DOM elements of the current layout (by viewport id) after each render. */
  async attach(elements: Map<string, HTMLDivElement>): Promise<void> {
    const engine = this.engine
    const group = this.group
    if (!engine || !group) return
    for (const [id, el] of this.elements) {
      if (elements.get(id) !== el) {
        group.removeViewports(this.renderingEngineId, id)
        engine.disableElement(id)
        this.elements.delete(id)
      }
    }
    const fresh: string[] = []
    for (const [id, el] of elements) {
      if (this.elements.get(id) === el) continue
      engine.enableElement({
        viewportId: id,
        type: Enums.ViewportType.STACK,
        element: el,
        defaultOptions: { background: [0, 0, 0] as Types.Point3 },
      })
      group.addViewport(id, this.renderingEngineId)
      this.elements.set(id, el)
      this.listenElement(id, el)
      fresh.push(id)
    }
    engine.resize(true, true)
    await Promise.all(
      this.state.viewports
        .filter((v) => fresh.includes(v.id) && v.seriesUid)
        .map((v) => this.show(v, v.seriesUid!, v.index)),
    )
  }

  private stackViewport(id: string): Types.IStackViewport | null {
    const vp = this.engine?.getViewport(id)
    return (vp as Types.IStackViewport | undefined) ?? null
  }

  activeViewportState(): ViewportState | undefined {
    return this.state.viewports[this.state.active]
  }

  activeViewport(): Types.IStackViewport | null {
    const v = this.activeViewportState()
    return v ? this.stackViewport(v.id) : null
  }

  /** Show a series in a viewport; the whole series is then decoded into the cache (progress in its SeriesState). */
  async show(v: ViewportState, seriesUid: string, index = 0): Promise<void> {
    v.seriesUid = seriesUid
    let series: ViewerSeries
    try {
      series = await this.ensureSeries(seriesUid)
    } catch {
      // Closed or switched to another study meanwhile (the load was aborted), or the series could not be read: the
      // series browser shows it as failed; nothing is left to reject unhandled.
      this.loading.delete(seriesUid)
      const st = this.seriesState(seriesUid)
      if (!this.destroyed && st) st.failed = Math.max(st.failed, 1)
      return
    }
    if (this.destroyed || v.seriesUid !== seriesUid) return
    const vp = this.stackViewport(v.id)
    if (!vp) return
    const ids = series.images.map((i) => i.imageId)
    v.total = ids.length
    v.index = Math.min(index, ids.length - 1)
    if (v === this.state.viewports[0]) expectFirstImage(this.studyUid, this.institution, series.images[v.index]?.sopUid ?? '')
    await vp.setStack(ids, v.index)
    if (this.destroyed) return
    this.applyDisplay(vp)
    vp.render()
    this.readWindow(v, vp)
    this.cacheDisplayed()
  }

  /** Re-apply the viewer-wide display state (invert, VOI function, colour map) to a viewport. */
  private applyDisplay(vp: Types.IStackViewport): void {
    vp.setProperties({
      invert: shownInvert(this.state.invert, photometricOf(vp)),
      VOILUTFunction:
        this.state.voiFunction === 'SIGMOID' ? Enums.VOILUTFunctionType.SAMPLED_SIGMOID : Enums.VOILUTFunctionType.LINEAR,
      ...(this.state.colormap ? { colormap: { name: this.state.colormap } } : {}),
    })
  }

  private cacheRun = 0
  /** Decode every image of every displayed series into the cache; sets stats.allImagesMs when all are in. */
  private cacheDisplayed(): void {
    const run = ++this.cacheRun
    const uids = [...new Set(this.state.viewports.map((v) => v.seriesUid).filter((u): u is string => !!u))]
    const all = uids.flatMap((u) => this.loaded.get(u)?.images.map((i) => i.imageId) ?? [])
    // a displayed series whose metadata is still on its way counts with its instance count (and a later show() runs
    // this again): all images are in only when every displayed series is
    const pending = uids.filter((u) => !this.loaded.has(u))
    this.stats.imagesTotal = all.length + pending.reduce((n, u) => n + (this.seriesState(u)?.total ?? 0), 0)
    const active = this.activeViewportState()
    // the active viewport's series first, from its current image on
    uids.sort((a, b) => (a === active?.seriesUid ? -1 : b === active?.seriesUid ? 1 : 0))
    void (async () => {
      for (const uid of uids) {
        const s = this.loaded.get(uid)
        const st = this.seriesState(uid)
        if (!s || !st) continue
        const start = uid === active?.seriesUid ? active.index : 0
        const ids = s.images.map((i) => i.imageId)
        const ordered = [...ids.slice(start), ...ids.slice(0, start)]
        const p = await cacheImages(
          ordered,
          (pr) => {
            st.done = pr.done
            st.total = pr.total
            st.failed = pr.failed
            this.stats.imagesCached = uids.reduce((n, u) => n + (this.seriesState(u)?.done ?? 0), 0)
          },
          this.abort.signal,
        )
        this.stats.fetchMsTotal += p.fetchMs
        this.stats.decodeMsTotal += p.decodeMs
        if (run !== this.cacheRun || this.destroyed) return
      }
      this.stats.imagesCached = all.filter((id) => cache.isLoaded(id)).length
      if (!pending.length && this.stats.allImagesMs === null && this.stats.imagesCached === this.stats.imagesTotal) {
        this.stats.allImagesMs = performance.now()
        for (const done of this.loadedWaiters.splice(0)) done()
      }
    })()
  }

  // ---- events ------------------------------------------------------------------------------------------------
  private listenElement(id: string, el: HTMLDivElement): void {
    const onNew = () => {
      const v = this.state.viewports.find((x) => x.id === id)
      const vp = this.stackViewport(id)
      if (!v || !vp) return
      v.index = vp.getCurrentImageIdIndex()
      if (this.state.viewports[this.state.active]?.id === id) {
        const img = this.getActiveImage()
        if (img) for (const cb of this.imageListeners) cb(img)
      }
    }
    const onRendered = () => {
      const vp = this.stackViewport(id)
      if (vp?.getCurrentImageId()) {
        if (this.stats.firstDiagnosticImageMs === null) diagnosticRendered(this.stats, performance.now())
        this.noteShown(id)
      }
      const v = this.state.viewports.find((x) => x.id === id)
      if (v && vp) this.readWindow(v, vp)
      for (const cb of this.renderListeners) cb(id)
    }
    el.addEventListener(Enums.Events.STACK_NEW_IMAGE, onNew)
    el.addEventListener(Enums.Events.IMAGE_RENDERED, onRendered)
  }

  private loadedWaiters: (() => void)[] = []
  /** Resolves once every image of the displayed series is in the cache (the viewer is idle: prefetch may start). */
  whenLoaded(): Promise<void> {
    if (this.stats.allImagesMs !== null) return Promise.resolve()
    return new Promise((resolve) => this.loadedWaiters.push(resolve))
  }

  private shown = new Set<string>()
  /** stats.viewportsShownMs: the first time every viewport given a series has rendered an image. */
  private noteShown(viewportId: string): void {
    this.shown.add(viewportId)
    if (this.stats.viewportsShownMs !== null) return
    const want = this.state.viewports.filter((v) => v.seriesUid)
    if (want.length && want.every((v) => this.shown.has(v.id))) this.stats.viewportsShownMs = performance.now()
  }

  private readWindow(v: ViewportState, vp: Types.IStackViewport): void {
    const r = vp.getProperties().voiRange
    if (r) {
      const w = toWindow(r)
      v.center = w.center
      v.width = w.width
    }
    try {
      v.zoom = vp.getZoom()
    } catch {
      /* no camera yet */
    }
  }

  onRendered(cb: (viewportId: string) => void): () => void {
    this.renderListeners.add(cb)
    return () => this.renderListeners.delete(cb)
  }

  // ---- the active image and the extension context -------------------------------------------------------------
  getActiveImage(): ActiveImage | null {
    const vp = this.activeViewport()
    const id = vp?.getCurrentImageId()
    if (!id) return null
    const p = parseImageId(id)
    return p ? { ...p, imageId: id } : null
  }

  context(): ViewerContext {
    return {
      studyUid: this.studyUid,
      institution: this.institution,
      renderingEngineId: this.renderingEngineId,
      toolGroupId: this.toolGroupId,
      toolGroupIds: [this.toolGroupId],
      viewportIds: () => this.state.viewports.map((v) => v.id),
      getActiveImage: () => this.getActiveImage(),
      onImageChange: (cb) => {
        this.imageListeners.add(cb)
        return () => this.imageListeners.delete(cb)
      },
      getViewportElement: (id) => this.elements.get(id) ?? null,
      whenLoaded: () => this.whenLoaded(),
    }
  }

  // ---- commands ----------------------------------------------------------------------------------------------
  setLayout(l: Layout): boolean {
    const ok = clampLayout(l)
    if (!ok) return false
    this.stopCine()
    this.state.layout = ok
    this.state.viewports = this.makeViewports(
      assignSeries(
        this.state.viewports.map((v) => v.seriesUid),
        this.seriesUids(),
        viewportCount(ok),
      ),
    )
    if (this.state.active >= this.state.viewports.length) this.state.active = 0
    return true
  }

  /** Put a series into a viewport (drag from the series browser, or click: the active viewport). */
  async assign(index: number, seriesUid: string): Promise<void> {
    const v = this.state.viewports[index]
    if (!v) return
    this.stopCine()
    this.state.active = index
    await this.show(v, seriesUid)
  }

  setActive(index: number): void {
    if (index === this.state.active || !this.state.viewports[index]) return
    this.stopCine()
    this.state.active = index
    const img = this.getActiveImage()
    if (img) for (const cb of this.imageListeners) cb(img)
  }

  scroll(delta: number): void {
    const vp = this.activeViewport()
    if (!vp) return
    const n = vp.getImageIds().length
    const i = Math.max(0, Math.min(n - 1, vp.getCurrentImageIdIndex() + delta))
    void vp.setImageIdIndex(i)
  }

  setIndex(index: number): void {
    const vp = this.activeViewport()
    if (vp) void vp.setImageIdIndex(Math.max(0, Math.min(vp.getImageIds().length - 1, index)))
  }

  setWindow(center: number, width: number): void {
    const vp = this.activeViewport()
    if (!vp) return
    vp.setProperties({ voiRange: toRange(center, width) })
    vp.render()
  }

  applyPreset(p: WindowPreset): void {
    this.setWindow(p.window_center, p.window_width)
  }

  private eachViewport(fn: (vp: Types.IStackViewport) => void): void {
    for (const v of this.state.viewports) {
      const vp = this.stackViewport(v.id)
      if (vp && vp.getCurrentImageId()) {
        fn(vp)
        vp.render()
      }
    }
  }

  toggleInvert(): void {
    this.state.invert = !this.state.invert
    this.eachViewport((vp) => vp.setProperties({ invert: shownInvert(this.state.invert, photometricOf(vp)) }))
  }

  setVoiFunction(f: VoiFunction): void {
    this.state.voiFunction = f
    this.eachViewport((vp) => this.applyDisplay(vp))
  }

  setColormap(name: string | null): void {
    this.state.colormap = name
    this.eachViewport((vp) => {
      if (name) vp.setProperties({ colormap: { name } })
      else {
        vp.unsetColormap()
        this.applyDisplay(vp)
      }
    })
  }

  rotate(deg: number): void {
    const vp = this.activeViewport()
    if (!vp) return
    const cur = vp.getViewPresentation().rotation ?? 0
    vp.setViewPresentation({ rotation: (((cur + deg) % 360) + 360) % 360 })
    vp.render()
  }

  flip(horizontal: boolean): void {
    const vp = this.activeViewport()
    if (!vp) return
    const cur = vp.getViewPresentation()
    vp.setViewPresentation(
      horizontal ? { flipHorizontal: !cur.flipHorizontal } : { flipVertical: !cur.flipVertical },
    )
    vp.render()
  }

  reset(): void {
    const vp = this.activeViewport()
    if (!vp) return
    vp.resetCamera()
    vp.resetProperties()
    this.applyDisplay(vp)
    vp.render()
  }

  setTool(tool: ToolId): void {
    if (!this.group || tool === this.state.tool) return
    setPrimaryTool(this.group, this.state.tool, tool)
    this.state.tool = tool
  }

  toggleValues(): void {
    this.state.showValues = !this.state.showValues
    setMeasurementValuesVisible(this.state.showValues)
    this.engine?.render()
  }

  deleteSelectedAnnotations(): number {
    const sel = annotation.selection.getAnnotationsSelected() ?? []
    for (const uid of sel) annotation.state.removeAnnotation(uid)
    this.engine?.render()
    return sel.length
  }

  // ---- cine (VIEW-02/16) -------------------------------------------------------------------------------------
  playCine(): void {
    const v = this.activeViewportState()
    const el = v ? this.elements.get(v.id) : undefined
    if (!el) return
    toolUtils.cine.stopClip(el)
    // Cornerstone plays backwards for a negative frame rate (its `reverse` option is overridden by the sign)
    const fps = Math.max(1, this.state.cine.fps)
    toolUtils.cine.playClip(el, {
      framesPerSecond: this.state.cine.reverse ? -fps : fps,
      reverse: this.state.cine.reverse,
      loop: this.state.cine.loop,
    })
    this.state.cine.playing = true
  }

  stopCine(): void {
    for (const el of this.elements.values()) toolUtils.cine.stopClip(el)
    this.state.cine.playing = false
  }

  toggleCine(): void {
    if (this.state.cine.playing) this.stopCine()
    else this.playCine()
  }

  setCine(patch: Partial<CineState>): void {
    Object.assign(this.state.cine, patch)
    if (this.state.cine.playing) this.playCine()
  }

  /** Frames per second a multi-frame series asks for, else the current setting. */
  cineFpsFor(seriesUid: string | null): number {
    return (seriesUid && this.loaded.get(seriesUid)?.cineFps) || this.state.cine.fps
  }

  resize(): void {
    this.engine?.resize(true, true)
  }

  destroy(): void {
    this.destroyed = true
    this.abort.abort()
    this.stopCine()
    for (const off of this.cleanups) off()
    ToolGroupManager.destroyToolGroup(this.toolGroupId)
    this.engine?.destroy()
    this.engine = null
    this.elements.clear()
  }
}
