/**
 * Key bindings of the viewer scope (issue 16; REQ: VIEW-02/05/06/07/08/12/16, UX R7). The viewer component
 * (web/src/views/viewer/StudyViewer.vue) registers the handlers; the `?` overlay lists them. `K` (key image) and
 * Ctrl+S (save marks) are declared by the measurement/key-image extension, not here.
 */
import { i18n } from '@/i18n'
import { defineBinding } from './keymap'

/** The description is kept as an i18n key too, so the `?` overlay shows it in the language chosen later. */
const v = (id: string, keys: string[], key: string, args?: Record<string, unknown>) =>
  defineBinding({
    id: `viewer.${id}`,
    keys,
    scope: 'viewer',
    description: args ? i18n.global.t(key, args) : i18n.global.t(key),
    descriptionKey: key,
    descriptionArgs: args,
  })

/** Keys 1–9: the window presets of the displayed modality (one binding a key, so the ? overlay stays readable). */
export const PRESET_BINDINGS = Array.from({ length: 9 }, (_, i) =>
  v(`preset-${i + 1}`, [String(i + 1)], i === 0 ? 'viewer.keys.presetFirst' : 'viewer.keys.preset', { n: i + 1 }),
)
/** Alt+1 … Alt+7: the seven fixed layouts. */
export const LAYOUT_BINDINGS = ['1×1', '1×2', '2×2', '2×3', '3×4', '4×6', '6×8'].map((label, i) =>
  v(`layout-${i + 1}`, [`Alt+${i + 1}`], 'viewer.keys.layout', { label }),
)

export const VIEWER = {
  viewerPreset: PRESET_BINDINGS[0],
  viewerNext: v('next-image', ['ArrowDown', 'ArrowRight'], 'viewer.keys.nextImage'),
  viewerPrev: v('prev-image', ['ArrowUp', 'ArrowLeft'], 'viewer.keys.prevImage'),
  viewerPageDown: v('page-down', ['PageDown'], 'viewer.keys.pageDown'),
  viewerPageUp: v('page-up', ['PageUp'], 'viewer.keys.pageUp'),
  viewerFirst: v('first-image', ['Home'], 'viewer.keys.firstImage'),
  viewerLast: v('last-image', ['End'], 'viewer.keys.lastImage'),
  viewerNextSeries: v('next-series', ['N'], 'viewer.keys.nextSeries'),
  viewerPrevSeries: v('prev-series', ['Shift+N'], 'viewer.keys.prevSeries'),
  viewerNextViewport: v('next-viewport', ['Tab'], 'viewer.keys.nextViewport'),
  viewerToolWl: v('tool-wl', ['W'], 'viewer.keys.toolWl'),
  viewerToolPan: v('tool-pan', ['P'], 'viewer.keys.toolPan'),
  viewerToolZoom: v('tool-zoom', ['Z'], 'viewer.keys.toolZoom'),
  viewerToolMagnify: v('tool-magnify', ['M'], 'viewer.keys.toolMagnify'),
  viewerToolRotate: v('tool-rotate', ['Shift+R'], 'viewer.keys.toolRotate'),
  viewerToolLength: v('tool-length', ['L'], 'viewer.keys.toolLength'),
  viewerToolAngle: v('tool-angle', ['A'], 'viewer.keys.toolAngle'),
  viewerToolCobb: v('tool-cobb', ['Shift+A'], 'viewer.keys.toolCobb'),
  viewerToolEllipse: v('tool-ellipse', ['E'], 'viewer.keys.toolEllipse'),
  viewerToolCircle: v('tool-circle', ['O'], 'viewer.keys.toolCircle'),
  viewerToolRectangle: v('tool-rectangle', ['Q'], 'viewer.keys.toolRectangle'),
  viewerToolPolygon: v('tool-polygon', ['G'], 'viewer.keys.toolPolygon'),
  viewerToolFreehand: v('tool-freehand', ['F'], 'viewer.keys.toolFreehand'),
  viewerToolProbe: v('tool-probe', ['B'], 'viewer.keys.toolProbe'),
  viewerToolArrow: v('tool-arrow', ['Shift+T'], 'viewer.keys.toolArrow'),
  viewerToolText: v('tool-text', ['T'], 'viewer.keys.toolText'),
  viewerRotateRight: v('rotate-right', ['R'], 'viewer.keys.rotateRight'),
  viewerRotateLeft: v('rotate-left', ['Alt+R'], 'viewer.keys.rotateLeft'),
  viewerFlipH: v('flip-h', ['H'], 'viewer.keys.flipH'),
  viewerFlipV: v('flip-v', ['V'], 'viewer.keys.flipV'),
  viewerInvert: v('invert', ['I'], 'viewer.keys.invert'),
  viewerSigmoid: v('voi-function', ['S'], 'viewer.keys.voiFunction'),
  viewerColormap: v('colormap', ['C'], 'viewer.keys.colormap'),
  viewerReset: v('reset', ['0'], 'viewer.keys.reset'),
  viewerValues: v('values', ['D'], 'viewer.keys.values'),
  viewerOverlay: v('overlay', ['Shift+O'], 'viewer.keys.overlay'),
  viewerDelete: v('delete', ['Delete', 'Backspace'], 'viewer.keys.delete'),
  viewerCine: v('cine', ['Space'], 'viewer.keys.cine'),
  viewerCineReverse: v('cine-reverse', ['Shift+Space'], 'viewer.keys.cineReverse'),
  viewerCineFaster: v('cine-faster', [']'], 'viewer.keys.cineFaster'),
  viewerCineSlower: v('cine-slower', ['['], 'viewer.keys.cineSlower'),
  viewerCineLoop: v('cine-loop', ['Shift+L'], 'viewer.keys.cineLoop'),
  viewerLayout: LAYOUT_BINDINGS[0],
} as const
