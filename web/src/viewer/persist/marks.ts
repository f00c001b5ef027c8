/**
 * The measurements and marks of the study open in a viewer (issue 16; REQ: VIEW-08): loaded from the server when the
 * viewer opens and drawn again, saved (JSON + the SR TID 1500 the adapters make) on 保存标记 / Ctrl+S and when the
 * viewer goes away with unsaved changes.
 *
 * Cornerstone's annotation state is global to the page: the marks of this study are found by the image they are
 * drawn on (its `wadors:` id names the study), cleared before they are drawn again and when the viewer closes.
 */
import { annotation, utilities as toolUtils } from '@cornerstonejs/tools'
import { reactive } from 'vue'
import { getAnnotations, putAnnotations, putAnnotationsKeepalive, type StoredAnnotation } from '@/api/viewer'
import { isApiError } from '@/api/http'
import { i18n } from '@/i18n'
import { frameImageId, parseImageId } from '@/viewer/core/dicomweb'
import type { ViewerContext } from '@/viewer/extensions'
import { type CsAnnotation, fingerprint, fromStored, toStored } from './serialize'

export interface MarksState {
  loaded: boolean
  version: number
  canEdit: boolean
  saving: boolean
  count: number
  /** Text of the last problem, shown in the panel. */
  error: string
}

type SrModule = typeof import('./sr')
let srModule: SrModule | null = null

/** Load the SR maker (Cornerstone's adapters and dcmjs) ahead of the first save. */
export async function preloadSr(): Promise<SrModule> {
  srModule ??= await import('./sr')
  return srModule
}

export type SaveOutcome = 'saved' | 'unchanged' | 'stale' | 'failed' | 'read_only'

function all(): CsAnnotation[] {
  return (annotation.state.getAllAnnotations() ?? []) as unknown as CsAnnotation[]
}

export class MarksSession {
  readonly state = reactive<MarksState>({ loaded: false, version: 0, canEdit: false, saving: false, count: 0, error: '' })
  private savedPrint = fingerprint([])
  private srSeriesUid: string | null = null

  constructor(private readonly ctx: ViewerContext) {}

  /** This study's annotations currently in Cornerstone's state. */
  private mine(): CsAnnotation[] {
    return all().filter((a) => {
      const ref = a.metadata.referencedImageId ? parseImageId(a.metadata.referencedImageId) : null
      return ref?.studyUid === this.ctx.studyUid
    })
  }

  stored(): StoredAnnotation[] {
    const out: StoredAnnotation[] = []
    for (const a of this.mine()) {
      const s = toStored(a, this.ctx.studyUid, parseImageId)
      if (s) out.push(s)
    }
    return out
  }

  dirty(): boolean {
    return this.state.loaded && fingerprint(this.stored()) !== this.savedPrint
  }

  private imageIdFor = (seriesUid: string, sopUid: string, frame: number): string =>
    frameImageId(this.ctx.studyUid, seriesUid, sopUid, frame, this.ctx.institution)

  /** Remove this study's annotations from Cornerstone's state (before drawing the saved ones, on close). */
  clear(): void {
    for (const a of this.mine()) if (a.annotationUID) annotation.state.removeAnnotation(a.annotationUID)
  }

  private render(): void {
    try {
      toolUtils.triggerAnnotationRenderForViewportIds(this.ctx.viewportIds())
    } catch {
      /* the viewports are being torn down */
    }
  }

  /** Load the saved marks and draw them (replacing this study's marks in Cornerstone's state). */
  async load(): Promise<void> {
    try {
      const doc = await getAnnotations(this.ctx.studyUid, this.ctx.institution)
      this.clear()
      const el = this.ctx.viewportIds().map((id) => this.ctx.getViewportElement(id)).find((e) => !!e) ?? undefined
      for (const s of doc.items) {
        const a = fromStored(s, this.imageIdFor)
        const group = (a.metadata.FrameOfReferenceUID as string | undefined) || el
        annotation.state.addAnnotation(a as never, group as never)
      }
      this.state.version = doc.version
      this.state.canEdit = doc.can_edit
      this.srSeriesUid = doc.series_instance_uid
      this.state.count = doc.items.length
      this.savedPrint = fingerprint(this.stored())
      this.state.loaded = true
      this.state.error = ''
      this.render()
    } catch (e) {
      this.state.error = isApiError(e) ? e.message : i18n.global.t('viewer.marks.loadFailed')
    }
  }

  /**
   * The page is going away with unsaved marks (closing the tab, a reload, following a link out of the app): send them
   * in a keepalive request, with the SR when the adapters are loaded already. False when they could not be sent.
   */
  saveOnUnload(): boolean {
    if (!this.state.loaded || !this.state.canEdit || !this.dirty()) return true
    const items = this.stored()
    const live = this.mine().filter((a) => items.some((i) => i.annotationUID === a.annotationUID))
    let sr: string | null = null
    try {
      sr = srModule ? srModule.measurementReport(live, { seriesUid: this.srSeriesUid, instanceNumber: this.state.version + 1 }) : null
    } catch {
      sr = null
    }
    const sent = putAnnotationsKeepalive(this.ctx.studyUid, this.state.version, items, sr, this.ctx.institution)
    if (sent) this.savedPrint = fingerprint(items)
    return sent
  }

  /** Save the marks if they changed (`force`: also when unchanged). */
  async save(force = false): Promise<{ outcome: SaveOutcome; message: string }> {
    if (!this.state.loaded) return { outcome: 'failed', message: i18n.global.t('viewer.marks.notLoaded') }
    if (!this.state.canEdit) return { outcome: 'read_only', message: i18n.global.t('viewer.marks.readOnly') }
    const items = this.stored()
    if (!force && fingerprint(items) === this.savedPrint) return { outcome: 'unchanged', message: i18n.global.t('viewer.marks.unchanged') }
    this.state.saving = true
    // Everything read from Cornerstone's state is read before the first await: on leaving, the viewer clears it.
    const live = this.mine().filter((a) => items.some((i) => i.annotationUID === a.annotationUID))
    let sr: string | null = null
    let srNote = ''
    const makeSr = (m: SrModule): void => {
      sr = m.measurementReport(live, { seriesUid: this.srSeriesUid, instanceNumber: this.state.version + 1 })
    }
    try {
      try {
        if (srModule) makeSr(srModule)
        else makeSr(await preloadSr())
      } catch (e) {
        console.warn('SR TID 1500 not made', e)
        srNote = i18n.global.t('viewer.marks.srFailed')
      }
      const doc = await putAnnotations(this.ctx.studyUid, this.state.version, items, sr, this.ctx.institution)
      this.state.version = doc.version
      this.srSeriesUid = doc.series_instance_uid ?? this.srSeriesUid
      this.state.count = doc.items.length
      this.savedPrint = fingerprint(items)
      this.state.error = ''
      if (sr && !doc.stored) srNote = i18n.global.t('viewer.marks.srNotStored')
      return { outcome: 'saved', message: i18n.global.t('viewer.marks.saved', { note: srNote }) }
    } catch (e) {
      const message = isApiError(e) ? e.message : i18n.global.t('viewer.marks.saveFailed')
      this.state.error = message
      return { outcome: isApiError(e) && e.code === 'stale_version' ? 'stale' : 'failed', message }
    } finally {
      this.state.saving = false
    }
  }
}
