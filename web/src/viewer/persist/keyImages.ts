/**
 * The key images of the study open in a viewer (issue 16; REQ: RPT-05; UX R13): `K` marks or unmarks the image shown
 * in the active viewport; every change is saved at once (the server writes a Key Object Selection document) and the
 * list is what the report editor's 图像 card shows and printing uses (its 打印 flag; a new key image is offered for
 * printing).
 */
import { reactive } from 'vue'
import { getKeyImages, type KeyImage, putKeyImages } from '@/api/viewer'
import { isApiError } from '@/api/http'
import { i18n } from '@/i18n'
import type { ActiveImage } from '@/viewer/extensions'

export interface KeyImagesState {
  loaded: boolean
  version: number
  canEdit: boolean
  items: KeyImage[]
  saving: boolean
  error: string
}

export function sameImage(k: Pick<KeyImage, 'sop_uid' | 'frame'>, img: Pick<ActiveImage, 'sopUid' | 'frame'>): boolean {
  return k.sop_uid === img.sopUid && k.frame === img.frame
}

type SavedListener = (studyUid: string, items: KeyImage[]) => void
const savedListeners = new Set<SavedListener>()
const open = new Set<KeyImageSession>()

/** Called after a viewer saved a change of its study's key images (the report's 图像 card, the other window). */
export function onKeyImagesSaved(cb: SavedListener): () => void {
  savedListeners.add(cb)
  return () => savedListeners.delete(cb)
}

/** Read the key images of `studyUid` again in every open viewer of it (changed elsewhere: the report window). */
export async function reloadKeyImages(studyUid: string): Promise<void> {
  await Promise.all([...open].filter((s) => s.studyUid === studyUid && !s.state.saving).map((s) => s.load()))
}

export class KeyImageSession {
  readonly state = reactive<KeyImagesState>({ loaded: false, version: 0, canEdit: false, items: [], saving: false, error: '' })

  constructor(
    readonly studyUid: string,
    private readonly institution?: string,
  ) {
    open.add(this)
  }

  /** The viewer went away. */
  close(): void {
    open.delete(this)
  }

  async load(): Promise<void> {
    try {
      const doc = await getKeyImages(this.studyUid, this.institution)
      Object.assign(this.state, { loaded: true, version: doc.version, canEdit: doc.can_edit, items: doc.items, error: '' })
    } catch (e) {
      this.state.error = isApiError(e) ? e.message : i18n.global.t('viewer.key.loadFailed')
    }
  }

  isKey(img: ActiveImage | null): boolean {
    return !!img && this.state.items.some((k) => sameImage(k, img))
  }

  /** Mark or unmark `img`; the message to show. */
  async toggle(img: ActiveImage | null): Promise<{ ok: boolean; message: string }> {
    if (!img) return { ok: false, message: i18n.global.t('viewer.key.noImage') }
    if (!this.state.loaded) return { ok: false, message: i18n.global.t('viewer.key.notLoaded') }
    if (!this.state.canEdit) return { ok: false, message: i18n.global.t('viewer.key.readOnly') }
    const was = this.isKey(img)
    const items = was
      ? this.state.items.filter((k) => !sameImage(k, img))
      : [...this.state.items, { sop_uid: img.sopUid, series_uid: img.seriesUid, frame: img.frame, note: '', print: true }]
    const r = await this.save(items)
    if (!r.ok) return r
    return { ok: true, message: was ? i18n.global.t('viewer.key.removed') : i18n.global.t('viewer.key.added') }
  }

  async save(items: KeyImage[]): Promise<{ ok: boolean; message: string }> {
    this.state.saving = true
    try {
      const doc = await putKeyImages(this.studyUid, this.state.version, items, this.institution)
      Object.assign(this.state, { version: doc.version, items: doc.items, error: '' })
      for (const cb of savedListeners) cb(this.studyUid, doc.items)
      return { ok: true, message: i18n.global.t('viewer.key.saved') }
    } catch (e) {
      const message = isApiError(e) ? e.message : i18n.global.t('viewer.key.saveFailed')
      this.state.error = message
      if (isApiError(e) && e.code === 'stale_version') await this.load()
      return { ok: false, message }
    } finally {
      this.state.saving = false
    }
  }
}
