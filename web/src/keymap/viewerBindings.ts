/**
 * Key bindings of the viewer scope (issue 16; REQ: VIEW-02/05/06/07/08/12/16, UX R7). The viewer component
 * (web/src/views/viewer/StudyViewer.vue) registers the handlers; the `?` overlay lists them. `K` (key image) and
 * Ctrl+S (save marks) are declared by the measurement/key-image extension, not here.
 */
import { defineBinding } from './keymap'

const v = (id: string, keys: string[], description: string) =>
  defineBinding({ id: `viewer.${id}`, keys, scope: 'viewer', description })

/** Keys 1–9: the window presets of the displayed modality (one binding a key, so the ? overlay stays readable). */
export const PRESET_BINDINGS = Array.from({ length: 9 }, (_, i) =>
  v(`preset-${i + 1}`, [String(i + 1)], i === 0 ? '窗宽窗位预设 1–9（按部位，如 CT：1 肺窗 2 纵隔窗 3 骨窗 4 脑窗 5 腹窗）' : `窗宽窗位预设 ${i + 1}`),
)
/** Alt+1 … Alt+7: the seven fixed layouts. */
export const LAYOUT_BINDINGS = ['1×1', '1×2', '2×2', '2×3', '3×4', '4×6', '6×8'].map((label, i) =>
  v(`layout-${i + 1}`, [`Alt+${i + 1}`], `布局 ${label}`),
)

export const VIEWER = {
  viewerPreset: PRESET_BINDINGS[0],
  viewerNext: v('next-image', ['ArrowDown', 'ArrowRight'], '下一幅图像'),
  viewerPrev: v('prev-image', ['ArrowUp', 'ArrowLeft'], '上一幅图像'),
  viewerPageDown: v('page-down', ['PageDown'], '向后翻 10 幅'),
  viewerPageUp: v('page-up', ['PageUp'], '向前翻 10 幅'),
  viewerFirst: v('first-image', ['Home'], '第一幅图像'),
  viewerLast: v('last-image', ['End'], '最后一幅图像'),
  viewerNextSeries: v('next-series', ['N'], '下一个序列'),
  viewerPrevSeries: v('prev-series', ['Shift+N'], '上一个序列'),
  viewerNextViewport: v('next-viewport', ['Tab'], '切换到下一个视窗'),
  viewerToolWl: v('tool-wl', ['W'], '窗宽窗位（鼠标拖动）'),
  viewerToolPan: v('tool-pan', ['P'], '平移'),
  viewerToolZoom: v('tool-zoom', ['Z'], '缩放'),
  viewerToolMagnify: v('tool-magnify', ['M'], '放大镜'),
  viewerToolRotate: v('tool-rotate', ['Shift+R'], '自由旋转'),
  viewerToolLength: v('tool-length', ['L'], '长度测量'),
  viewerToolAngle: v('tool-angle', ['A'], '角度测量'),
  viewerToolCobb: v('tool-cobb', ['Shift+A'], 'Cobb 角测量'),
  viewerToolEllipse: v('tool-ellipse', ['E'], '椭圆 ROI'),
  viewerToolCircle: v('tool-circle', ['O'], '圆形 ROI'),
  viewerToolRectangle: v('tool-rectangle', ['Q'], '矩形 ROI'),
  viewerToolPolygon: v('tool-polygon', ['G'], '多边形 ROI（单击落点）'),
  viewerToolFreehand: v('tool-freehand', ['F'], '自由 ROI（拖动勾画）'),
  viewerToolProbe: v('tool-probe', ['B'], '点测量（CT 值 / SUV）'),
  viewerToolArrow: v('tool-arrow', ['Shift+T'], '箭头标注'),
  viewerToolText: v('tool-text', ['T'], '文字标注'),
  viewerRotateRight: v('rotate-right', ['R'], '顺时针旋转 90°'),
  viewerRotateLeft: v('rotate-left', ['Alt+R'], '逆时针旋转 90°'),
  viewerFlipH: v('flip-h', ['H'], '水平翻转'),
  viewerFlipV: v('flip-v', ['V'], '垂直翻转'),
  viewerInvert: v('invert', ['I'], '反相'),
  viewerSigmoid: v('voi-function', ['S'], '线性 / S 形窗函数切换'),
  viewerColormap: v('colormap', ['C'], '切换伪彩'),
  viewerReset: v('reset', ['0'], '复位（缩放、平移、旋转、窗宽窗位）'),
  viewerValues: v('values', ['D'], '显示 / 隐藏测量值'),
  viewerOverlay: v('overlay', ['Shift+O'], '显示 / 隐藏叠加层（60xx）'),
  viewerDelete: v('delete', ['Delete', 'Backspace'], '删除选中的标注'),
  viewerCine: v('cine', ['Space'], '电影播放 / 暂停'),
  viewerCineReverse: v('cine-reverse', ['Shift+Space'], '电影倒放切换'),
  viewerCineFaster: v('cine-faster', [']'], '电影加速'),
  viewerCineSlower: v('cine-slower', ['['], '电影减速'),
  viewerCineLoop: v('cine-loop', ['Shift+L'], '电影循环切换'),
  viewerLayout: LAYOUT_BINDINGS[0],
} as const
