/**
 * The persistence extension of one open viewer (issue 16; REQ: VIEW-08, RPT-05; UX R7, R13): loads the study's saved
 * marks and key images, draws the marks, saves them on 保存标记 / Ctrl+S and when the viewer goes away with unsaved
 * changes (in the app: a normal save; the page unloading: a keepalive request), toggles the key image with `K`, shows the
 * key-image badge and list, and opens at `?series=&sop=&frame=` when the URL names an image.
 *
 * Registered (lightly, without Cornerstone) by ./register.ts; this module is loaded with the viewer's own chunk.
 */
import { createApp, reactive } from 'vue'
import { ElMessage, ElMessageBox } from 'element-plus'
import { eventTarget } from '@cornerstonejs/core'
import { Enums as ToolEnums } from '@cornerstonejs/tools'
import { activateScope, B } from '@/keymap'
import { i18n } from '@/i18n'
import type { ViewerContext } from '@/viewer/extensions'
import KeyImagePanel from './KeyImagePanel.vue'
import { KeyImageSession } from './keyImages'
import { MarksSession, preloadSr } from './marks'
import { showImage, targetFromUrl } from './navigate'

export interface PersistHandle {
  marks: MarksSession
  keys: KeyImageSession
  save(): Promise<void>
  toggleKey(): Promise<void>
}

const ANNOTATION_EVENTS = [
  ToolEnums.Events.ANNOTATION_COMPLETED,
  ToolEnums.Events.ANNOTATION_MODIFIED,
  ToolEnums.Events.ANNOTATION_REMOVED,
  ToolEnums.Events.ANNOTATION_ADDED,
]

function viewerRoot(ctx: ViewerContext): HTMLElement | null {
  for (const id of ctx.viewportIds()) {
    const el = ctx.getViewportElement(id)?.closest<HTMLElement>('[data-testid="study-viewer"]')
    if (el) return el
  }
  return null
}

export function attach(ctx: ViewerContext): { handle: PersistHandle; dispose: () => void } {
  const marks = new MarksSession(ctx)
  const keys = new KeyImageSession(ctx.studyUid, ctx.institution)
  const current = reactive({ image: ctx.getActiveImage(), dirty: false })
  void preloadSr()

  const refreshDirty = (): void => {
    current.dirty = marks.dirty()
  }
  let timer: ReturnType<typeof setTimeout> | null = null
  const onAnnotationEvent = (): void => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(refreshDirty, 150)
  }
  for (const ev of ANNOTATION_EVENTS) eventTarget.addEventListener(ev, onAnnotationEvent)
  const offImage = ctx.onImageChange((img) => {
    current.image = img
  })

  async function save(): Promise<void> {
    const r = await marks.save(true)
    refreshDirty()
    if (r.outcome === 'saved') ElMessage.success({ message: r.message, grouping: true })
    else if (r.outcome === 'stale') {
      try {
        await ElMessageBox.confirm(i18n.global.t('viewer.marks.staleConfirm', { message: r.message }), i18n.global.t('viewer.marks.staleTitle'), {
          confirmButtonText: i18n.global.t('viewer.marks.loadLatest'),
          cancelButtonText: i18n.global.t('viewer.marks.notNow'),
          type: 'warning',
        })
        await marks.load()
        refreshDirty()
      } catch {
        /* kept as is */
      }
    } else ElMessage.warning({ message: r.message, grouping: true })
  }

  async function toggleKey(): Promise<void> {
    const r = await keys.toggle(ctx.getActiveImage())
    if (r.ok) ElMessage.success({ message: r.message, grouping: true })
    else ElMessage.warning({ message: r.message, grouping: true })
  }

  const handle: PersistHandle = { marks, keys, save, toggleKey }

  // keys: in the viewer scope (page-wide for the full-window viewer; inside the viewer when embedded, like its own)
  const root = viewerRoot(ctx)
  const embedded = !!root?.classList.contains('embedded')
  const offKeys = activateScope(
    'viewer',
    {
      [B.viewerSaveMarks.id]: () => void save(),
      [B.viewerKeyImage.id]: () => void toggleKey(),
    },
    embedded && root ? { el: () => root } : {},
  )

  // the badge and list, over the grid
  const grid = root?.querySelector<HTMLElement>('[data-testid="viewer-grid"]') ?? root
  const host = document.createElement('div')
  let panel: ReturnType<typeof createApp> | null = null
  if (grid) {
    if (getComputedStyle(grid).position === 'static') grid.style.position = 'relative'
    grid.appendChild(host)
    panel = createApp(KeyImagePanel, {
      studyUid: ctx.studyUid,
      institution: ctx.institution,
      keys,
      marks,
      current,
      go: (k: { series_uid: string; sop_uid: string; frame: number }) =>
        void showImage(ctx, { seriesUid: k.series_uid, sopUid: k.sop_uid, frame: k.frame }),
    })
    panel.mount(host)
  }

  // leaving the page itself (tab closed, reload, a link out): saved by a keepalive request; asked to stay only when
  // the marks are too large for one
  const beforeUnload = (e: BeforeUnloadEvent): void => {
    if (!marks.saveOnUnload()) e.preventDefault()
  }
  window.addEventListener('beforeunload', beforeUnload)

  void (async () => {
    await Promise.all([marks.load(), keys.load()])
    refreshDirty()
    const target = targetFromUrl(location.search)
    if (target && target.sopUid) await showImage(ctx, target)
  })()

  const dispose = (): void => {
    offKeys()
    offImage()
    window.removeEventListener('beforeunload', beforeUnload)
    for (const ev of ANNOTATION_EVENTS) eventTarget.removeEventListener(ev, onAnnotationEvent)
    if (timer) clearTimeout(timer)
    // autosave on leave (UX: nothing a doctor drew is lost by closing the viewer); the request outlives the viewer
    if (marks.state.canEdit && marks.dirty()) {
      void marks.save().then((r) => {
        if (r.outcome === 'saved') ElMessage.success({ message: i18n.global.t('viewer.marks.autosaved', { message: r.message }), grouping: true })
        else if (r.outcome !== 'unchanged') ElMessage.warning({ message: i18n.global.t('viewer.marks.autosaveFailed', { message: r.message }), grouping: true })
      })
    }
    marks.clear()
    keys.close()
    panel?.unmount()
    host.remove()
  }
  return { handle, dispose }
}
