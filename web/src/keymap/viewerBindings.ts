/**
 * Key bindings of the viewer scope (issue 16; REQ: VIEW-02/05/06/07/08/12/16, UX R7). The viewer component
 * (web/src/views/viewer/StudyViewer.vue) registers the handlers; the `?` overlay lists them. `K` (key image) and
 * Ctrl+S (save marks) are declared by the measurement/key-image extension, not here.
 */
import { i18n } from '@/i18n'
import { defineBinding } from './keymap'

const v = (id: string, keys: string[], description: string) =>
  defineBinding({ id: `viewer.${id}`, keys, scope: 'viewer', description })

/** Keys 1–9: the window presets of the displayed modality (one binding a key, so the ? overlay stays readable). */
export const PRESET_BINDINGS = Array.from({ length: 9 }, (_, i) =>
  v(`preset-${i + 1}`, [String(i + 1)], i === 0 ? i18n.global.t('viewer.keys.presetFirst') : i18n.global.t('viewer.keys.preset', { n: i + 1 })),
)
/** Alt+1 … Alt+7: the seven fixed layouts. */
export const LAYOUT_BINDINGS = ['1×1', '1×2', '2×2', '2×3', '3×4', '4×6', '6×8'].map((label, i) =>
  v(`layout-${i + 1}`, [`Alt+${i + 1}`], i18n.global.t('viewer.keys.layout', { label })),
)

export const VIEWER = {
  viewerPreset: PRESET_BINDINGS[0],
  viewerNext: v('next-image', ['ArrowDown', 'ArrowRight'], i18n.global.t('viewer.keys.nextImage')),
  viewerPrev: v('prev-image', ['ArrowUp', 'ArrowLeft'], i18n.global.t('viewer.keys.prevImage')),
  viewerPageDown: v('page-down', ['PageDown'], i18n.global.t('viewer.keys.pageDown')),
  viewerPageUp: v('page-up', ['PageUp'], i18n.global.t('viewer.keys.pageUp')),
  viewerFirst: v('first-image', ['Home'], i18n.global.t('viewer.keys.firstImage')),
  viewerLast: v('last-image', ['End'], i18n.global.t('viewer.keys.lastImage')),
  viewerNextSeries: v('next-series', ['N'], i18n.global.t('viewer.keys.nextSeries')),
  viewerPrevSeries: v('prev-series', ['Shift+N'], i18n.global.t('viewer.keys.prevSeries')),
  viewerNextViewport: v('next-viewport', ['Tab'], i18n.global.t('viewer.keys.nextViewport')),
  viewerToolWl: v('tool-wl', ['W'], i18n.global.t('viewer.keys.toolWl')),
  viewerToolPan: v('tool-pan', ['P'], i18n.global.t('viewer.keys.toolPan')),
  viewerToolZoom: v('tool-zoom', ['Z'], i18n.global.t('viewer.keys.toolZoom')),
  viewerToolMagnify: v('tool-magnify', ['M'], i18n.global.t('viewer.keys.toolMagnify')),
  viewerToolRotate: v('tool-rotate', ['Shift+R'], i18n.global.t('viewer.keys.toolRotate')),
  viewerToolLength: v('tool-length', ['L'], i18n.global.t('viewer.keys.toolLength')),
  viewerToolAngle: v('tool-angle', ['A'], i18n.global.t('viewer.keys.toolAngle')),
  viewerToolCobb: v('tool-cobb', ['Shift+A'], i18n.global.t('viewer.keys.toolCobb')),
  viewerToolEllipse: v('tool-ellipse', ['E'], i18n.global.t('viewer.keys.toolEllipse')),
  viewerToolCircle: v('tool-circle', ['O'], i18n.global.t('viewer.keys.toolCircle')),
  viewerToolRectangle: v('tool-rectangle', ['Q'], i18n.global.t('viewer.keys.toolRectangle')),
  viewerToolPolygon: v('tool-polygon', ['G'], i18n.global.t('viewer.keys.toolPolygon')),
  viewerToolFreehand: v('tool-freehand', ['F'], i18n.global.t('viewer.keys.toolFreehand')),
  viewerToolProbe: v('tool-probe', ['B'], i18n.global.t('viewer.keys.toolProbe')),
  viewerToolArrow: v('tool-arrow', ['Shift+T'], i18n.global.t('viewer.keys.toolArrow')),
  viewerToolText: v('tool-text', ['T'], i18n.global.t('viewer.keys.toolText')),
  viewerRotateRight: v('rotate-right', ['R'], i18n.global.t('viewer.keys.rotateRight')),
  viewerRotateLeft: v('rotate-left', ['Alt+R'], i18n.global.t('viewer.keys.rotateLeft')),
  viewerFlipH: v('flip-h', ['H'], i18n.global.t('viewer.keys.flipH')),
  viewerFlipV: v('flip-v', ['V'], i18n.global.t('viewer.keys.flipV')),
  viewerInvert: v('invert', ['I'], i18n.global.t('viewer.keys.invert')),
  viewerSigmoid: v('voi-function', ['S'], i18n.global.t('viewer.keys.voiFunction')),
  viewerColormap: v('colormap', ['C'], i18n.global.t('viewer.keys.colormap')),
  viewerReset: v('reset', ['0'], i18n.global.t('viewer.keys.reset')),
  viewerValues: v('values', ['D'], i18n.global.t('viewer.keys.values')),
  viewerOverlay: v('overlay', ['Shift+O'], i18n.global.t('viewer.keys.overlay')),
  viewerDelete: v('delete', ['Delete', 'Backspace'], i18n.global.t('viewer.keys.delete')),
  viewerCine: v('cine', ['Space'], i18n.global.t('viewer.keys.cine')),
  viewerCineReverse: v('cine-reverse', ['Shift+Space'], i18n.global.t('viewer.keys.cineReverse')),
  viewerCineFaster: v('cine-faster', [']'], i18n.global.t('viewer.keys.cineFaster')),
  viewerCineSlower: v('cine-slower', ['['], i18n.global.t('viewer.keys.cineSlower')),
  viewerCineLoop: v('cine-loop', ['Shift+L'], i18n.global.t('viewer.keys.cineLoop')),
  viewerLayout: LAYOUT_BINDINGS[0],
} as const
