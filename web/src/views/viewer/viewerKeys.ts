/** The viewer scope's key handlers (UX R7), bound to the controller of the mounted StudyViewer. */
import type { KeyHandler } from '@/keymap'
import { B } from '@/keymap'
import { LAYOUT_BINDINGS, PRESET_BINDINGS } from '@/keymap/viewerBindings'
import type { ViewerController } from '@/viewer/core/controller'
import { LAYOUTS } from '@/viewer/core/layouts'
import { tagString } from '@/viewer/core/dicomweb'
import type { ToolId } from '@/viewer/core/tools'
import { COLORMAPS, presetForKey, type WindowPreset } from '@/viewer/core/voi'

export function activeModality(c: ViewerController): string {
  const v = c.activeViewportState()
  const s = v?.seriesUid ? c.getSeries(v.seriesUid) : undefined
  return s?.modality || tagString(s?.images[0]?.instance, '00080060')
}

export function nextColormap(current: string | null): string | null {
  const i = COLORMAPS.findIndex((m) => m.name === current)
  return COLORMAPS[(i + 1) % COLORMAPS.length].name
}

export function viewerKeyHandlers(
  get: () => ViewerController | null,
  presets: () => WindowPreset[],
): Record<string, KeyHandler> {
  const withCtrl =
    (fn: (c: ViewerController, e: KeyboardEvent) => void | boolean): KeyHandler =>
    (e) => {
      const c = get()
      if (!c || c.state.status !== 'ready') return false
      return fn(c, e)
    }
  const tool = (id: ToolId) => withCtrl((c) => c.setTool(id))
  const step = (n: number) => withCtrl((c) => c.scroll(n))
  const seriesStep = (n: number) =>
    withCtrl((c) => {
      const uids = c.seriesUids()
      const cur = c.activeViewportState()?.seriesUid
      const i = cur ? uids.indexOf(cur) : -1
      const next = uids[(i + n + uids.length) % uids.length]
      if (next) void c.assign(c.state.active, next)
    })
  const handlers: Record<string, KeyHandler> = {}
  PRESET_BINDINGS.forEach((b, i) => {
    handlers[b.id] = withCtrl((c) => {
      const p = presetForKey(presets(), activeModality(c), String(i + 1))
      if (!p) return false
      c.applyPreset(p)
    })
  })
  LAYOUT_BINDINGS.forEach((b, i) => {
    handlers[b.id] = withCtrl((c) => void c.setLayout(LAYOUTS[i]))
  })
  return {
    ...handlers,
    [B.viewerNext.id]: step(1),
    [B.viewerPrev.id]: step(-1),
    [B.viewerPageDown.id]: step(10),
    [B.viewerPageUp.id]: step(-10),
    [B.viewerFirst.id]: withCtrl((c) => c.setIndex(0)),
    [B.viewerLast.id]: withCtrl((c) => c.setIndex(1e9)),
    [B.viewerNextSeries.id]: seriesStep(1),
    [B.viewerPrevSeries.id]: seriesStep(-1),
    [B.viewerNextViewport.id]: withCtrl((c) => c.setActive((c.state.active + 1) % c.state.viewports.length)),
    [B.viewerToolWl.id]: tool('wl'),
    [B.viewerToolPan.id]: tool('pan'),
    [B.viewerToolZoom.id]: tool('zoom'),
    [B.viewerToolMagnify.id]: tool('magnify'),
    [B.viewerToolRotate.id]: tool('rotate'),
    [B.viewerToolLength.id]: tool('length'),
    [B.viewerToolAngle.id]: tool('angle'),
    [B.viewerToolCobb.id]: tool('cobb'),
    [B.viewerToolEllipse.id]: tool('ellipse'),
    [B.viewerToolCircle.id]: tool('circle'),
    [B.viewerToolRectangle.id]: tool('rectangle'),
    [B.viewerToolPolygon.id]: tool('polygon'),
    [B.viewerToolFreehand.id]: tool('freehand'),
    [B.viewerToolProbe.id]: tool('probe'),
    [B.viewerToolArrow.id]: tool('arrow'),
    [B.viewerToolText.id]: tool('text'),
    [B.viewerRotateRight.id]: withCtrl((c) => c.rotate(90)),
    [B.viewerRotateLeft.id]: withCtrl((c) => c.rotate(-90)),
    [B.viewerFlipH.id]: withCtrl((c) => c.flip(true)),
    [B.viewerFlipV.id]: withCtrl((c) => c.flip(false)),
    [B.viewerInvert.id]: withCtrl((c) => c.toggleInvert()),
    [B.viewerSigmoid.id]: withCtrl((c) => c.setVoiFunction(c.state.voiFunction === 'LINEAR' ? 'SIGMOID' : 'LINEAR')),
    [B.viewerColormap.id]: withCtrl((c) => c.setColormap(nextColormap(c.state.colormap))),
    [B.viewerReset.id]: withCtrl((c) => c.reset()),
    [B.viewerValues.id]: withCtrl((c) => c.toggleValues()),
    [B.viewerOverlay.id]: withCtrl((c) => {
      c.state.showOverlay = !c.state.showOverlay
    }),
    [B.viewerDelete.id]: withCtrl((c) => c.deleteSelectedAnnotations() > 0),
    [B.viewerCine.id]: withCtrl((c) => c.toggleCine()),
    [B.viewerCineReverse.id]: withCtrl((c) => c.setCine({ reverse: !c.state.cine.reverse })),
    [B.viewerCineFaster.id]: withCtrl((c) => c.setCine({ fps: Math.min(60, c.state.cine.fps + 5) })),
    [B.viewerCineSlower.id]: withCtrl((c) => c.setCine({ fps: Math.max(1, c.state.cine.fps - 5) })),
    [B.viewerCineLoop.id]: withCtrl((c) => c.setCine({ loop: !c.state.cine.loop })),
  }
}
