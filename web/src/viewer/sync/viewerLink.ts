/**
 * The viewer window's side of the selections (REQ: RPT-12, REC-11/12; UX R13, R18, R23): what the report window
 * picks is shown here — a series (`series`: put in the active viewport, or that viewport made active when one shows
 * it already) or a key image of its 图像 card (`image`: the stack moved to it) — also when it arrives while the
 * viewer is still opening the study (kept until the viewer of that study is ready); a key image marked here with `K`
 * is announced (`key-images`) so the report's 图像 card reads the list again, and a change there reloads it here;
 * the exam after this one (`next`) becomes the window's reading list, so it is prefetched.
 */
import type { ViewerController } from '@/viewer/core/controller'
import type { ViewerContext } from '@/viewer/extensions'
import { onKeyImagesSaved, reloadKeyImages } from '@/viewer/persist/keyImages'
import { setReadingList } from '@/viewer/readingList'
import type { StudyPayload, SyncEndpoint } from './protocol'

export interface ShownViewer {
  ctx: ViewerContext
  controller: ViewerController
}

interface Target {
  studyUid: string
  seriesUid: string
  sopUid?: string
  frame?: number
}

/** Put a series on screen: the viewport showing it becomes active, else the active viewport shows it. */
export async function applySeries(c: Pick<ViewerController, 'state' | 'assign' | 'setActive'>, seriesUid: string): Promise<void> {
  const at = c.state.viewports.findIndex((v) => v.seriesUid === seriesUid)
  if (at >= 0) c.setActive(at)
  else await c.assign(c.state.active, seriesUid)
}

export function linkViewerWindow(
  ep: SyncEndpoint,
  study: () => StudyPayload | null,
  viewer: () => ShownViewer | null,
): { ready: () => void; dispose: () => void } {
  let pending: Target | null = null
  let applying = Promise.resolve()

  const apply = (t: Target): void => {
    const v = viewer()
    if (!v || v.ctx.studyUid !== t.studyUid) {
      pending = t // the viewer of that study is not ready yet
      return
    }
    pending = null
    applying = applying.then(async () => {
      if (t.sopUid) {
        const { showImage } = await import('@/viewer/persist/navigate')
        await showImage(v.ctx, { seriesUid: t.seriesUid, sopUid: t.sopUid, frame: t.frame ?? 1 })
      } else await applySeries(v.controller, t.seriesUid)
    })
  }

  const offs = [
    ep.on('series', (p) => {
      if (p.studyUid === study()?.studyUid) apply({ studyUid: p.studyUid, seriesUid: p.seriesUid })
    }),
    ep.on('image', (p) => {
      if (p.studyUid === study()?.studyUid) apply({ ...p })
    }),
    ep.on('key-images', (p) => void reloadKeyImages(p.studyUid)),
    ep.on('next', (p) => {
      const cur = study()
      if (cur) setReadingList([{ key: 'shown', study: cur }, { key: 'next', study: p }], 'shown')
    }),
    onKeyImagesSaved((studyUid, items) => {
      ep.send('key-images', { studyUid, sopUids: [...new Set(items.map((k) => k.sop_uid))] })
    }),
  ]
  return {
    /** The viewer of the current study is ready: show what was asked for meanwhile. */
    ready: () => {
      if (pending) apply(pending)
    },
    dispose: () => {
      for (const off of offs) off()
    },
  }
}
