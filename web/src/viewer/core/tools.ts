/**
 * The tool group of a viewer (REQ: VIEW-05..08): the left button drives the chosen tool (W/L by default), the middle
 * button pans, the right button zooms, the wheel scrolls the stack. Measurement tools are Cornerstone's own; their
 * statistics come in the modality's units (HU for CT, SUV where the PET tags allow).
 */
import {
  AngleTool,
  ArrowAnnotateTool,
  CircleROITool,
  CobbAngleTool,
  EllipticalROITool,
  Enums as ToolEnums,
  LabelTool,
  LengthTool,
  MagnifyTool,
  PanTool,
  PlanarFreehandROITool,
  PlanarRotateTool,
  ProbeTool,
  RectangleROITool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  annotation,
  state as toolsState,
  type Types as ToolTypes,
} from '@cornerstonejs/tools'
import { probeGetTextLines, roiGetTextLines } from './textLines'

export type ToolId =
  | 'wl'
  | 'pan'
  | 'zoom'
  | 'magnify'
  | 'rotate'
  | 'length'
  | 'angle'
  | 'cobb'
  | 'ellipse'
  | 'circle'
  | 'rectangle'
  | 'polygon'
  | 'freehand'
  | 'probe'
  | 'arrow'
  | 'text'

export interface ToolDef {
  id: ToolId
  /** Cornerstone tool name (the polygon is the freehand tool with a different configuration: the same name). */
  toolName: string
  label: string
  bindingId: string
  measurement: boolean
}

export const TOOLS: readonly ToolDef[] = [
  { id: 'wl', toolName: WindowLevelTool.toolName, label: '窗宽窗位', bindingId: 'viewer.tool-wl', measurement: false },
  { id: 'pan', toolName: PanTool.toolName, label: '平移', bindingId: 'viewer.tool-pan', measurement: false },
  { id: 'zoom', toolName: ZoomTool.toolName, label: '缩放', bindingId: 'viewer.tool-zoom', measurement: false },
  { id: 'magnify', toolName: MagnifyTool.toolName, label: '放大镜', bindingId: 'viewer.tool-magnify', measurement: false },
  { id: 'rotate', toolName: PlanarRotateTool.toolName, label: '自由旋转', bindingId: 'viewer.tool-rotate', measurement: false },
  { id: 'length', toolName: LengthTool.toolName, label: '长度', bindingId: 'viewer.tool-length', measurement: true },
  { id: 'angle', toolName: AngleTool.toolName, label: '角度', bindingId: 'viewer.tool-angle', measurement: true },
  { id: 'cobb', toolName: CobbAngleTool.toolName, label: 'Cobb 角', bindingId: 'viewer.tool-cobb', measurement: true },
  { id: 'ellipse', toolName: EllipticalROITool.toolName, label: '椭圆 ROI', bindingId: 'viewer.tool-ellipse', measurement: true },
  { id: 'circle', toolName: CircleROITool.toolName, label: '圆形 ROI', bindingId: 'viewer.tool-circle', measurement: true },
  { id: 'rectangle', toolName: RectangleROITool.toolName, label: '矩形 ROI', bindingId: 'viewer.tool-rectangle', measurement: true },
  { id: 'polygon', toolName: PlanarFreehandROITool.toolName, label: '多边形 ROI', bindingId: 'viewer.tool-polygon', measurement: true },
  { id: 'freehand', toolName: PlanarFreehandROITool.toolName, label: '自由 ROI', bindingId: 'viewer.tool-freehand', measurement: true },
  { id: 'probe', toolName: ProbeTool.toolName, label: '点测量', bindingId: 'viewer.tool-probe', measurement: true },
  { id: 'arrow', toolName: ArrowAnnotateTool.toolName, label: '箭头标注', bindingId: 'viewer.tool-arrow', measurement: true },
  { id: 'text', toolName: LabelTool.toolName, label: '文字标注', bindingId: 'viewer.tool-text', measurement: true },
]

let registered = false

function registerTools(): void {
  if (registered) return
  registered = true
  for (const T of [
    WindowLevelTool,
    PanTool,
    ZoomTool,
    MagnifyTool,
    PlanarRotateTool,
    StackScrollTool,
    LengthTool,
    AngleTool,
    CobbAngleTool,
    EllipticalROITool,
    CircleROITool,
    RectangleROITool,
    PlanarFreehandROITool,
    ProbeTool,
    ArrowAnnotateTool,
    LabelTool,
  ]) {
    // A tool already added (a second viewer, a hot reload) is fine.
    if (!toolsState.tools[T.toolName]) addTool(T)
  }
}

/** Asks the user for a text (arrow and text labels); the viewer passes an Element Plus prompt. */
export type TextPrompt = (title: string, initial?: string) => Promise<string | null>

export function createToolGroup(id: string, prompt: TextPrompt): ToolTypes.IToolGroup {
  registerTools()
  ToolGroupManager.destroyToolGroup(id)
  const group = ToolGroupManager.createToolGroup(id)!
  const ask = (title: string) => (done: (text: string) => void, initial?: string) => {
    void prompt(title, initial).then((t) => {
      if (t !== null) done(t)
    })
  }
  for (const t of [WindowLevelTool, PanTool, ZoomTool, MagnifyTool, PlanarRotateTool, StackScrollTool]) {
    group.addTool(t.toolName)
  }
  for (const t of [LengthTool, AngleTool, CobbAngleTool]) group.addTool(t.toolName)
  for (const t of [EllipticalROITool, CircleROITool, RectangleROITool]) {
    group.addTool(t.toolName, { getTextLines: roiGetTextLines })
  }
  group.addTool(ProbeTool.toolName, { getTextLines: probeGetTextLines })
  group.addTool(PlanarFreehandROITool.toolName, {
    calculateStats: true,
    allowOpenContours: false,
    getTextLines: roiGetTextLines,
  })
  group.addTool(ArrowAnnotateTool.toolName, {
    getTextCallback: ask('箭头标注文字'),
    changeTextCallback: (_data: unknown, _evt: unknown, done: (t: string) => void) => ask('修改标注文字')(done),
  })
  group.addTool(LabelTool.toolName, {
    getTextCallback: ask('文字标注'),
    changeTextCallback: (_data: unknown, _evt: unknown, done: (t: string) => void) => ask('修改标注文字')(done),
  })
  const { MouseBindings } = ToolEnums
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] })
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] })
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] })
  group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] })
  for (const t of TOOLS.filter((x) => x.measurement)) group.setToolPassive(t.toolName)
  return group
}

/**
 * Make `tool` the left-button tool. The previous left-button tool goes back to passive (measurements stay
 * editable) — except the navigation tools that also sit on the middle/right buttons, which keep those bindings.
 */
export function setPrimaryTool(group: ToolTypes.IToolGroup, current: ToolId, tool: ToolId): void {
  const { MouseBindings } = ToolEnums
  const prev = TOOLS.find((t) => t.id === current)!
  const next = TOOLS.find((t) => t.id === tool)!
  if (prev.toolName !== next.toolName) {
    if (prev.toolName === PanTool.toolName) {
      group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] })
    } else if (prev.toolName === ZoomTool.toolName) {
      group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] })
    } else {
      group.setToolPassive(prev.toolName)
    }
  }
  if (next.toolName === PlanarFreehandROITool.toolName) {
    // polygon: clicks place vertices; freehand: drag draws
    const cfg = group.getToolConfiguration(PlanarFreehandROITool.toolName) as Record<string, unknown>
    group.setToolConfiguration(PlanarFreehandROITool.toolName, { ...cfg, allowOpenContours: false })
  }
  const extra =
    next.toolName === PanTool.toolName
      ? [{ mouseButton: MouseBindings.Auxiliary }]
      : next.toolName === ZoomTool.toolName
        ? [{ mouseButton: MouseBindings.Secondary }]
        : []
  group.setToolActive(next.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }, ...extra] })
}

/** Show or hide the measured values (text boxes) of every annotation (VIEW-08). */
export function setMeasurementValuesVisible(visible: boolean): void {
  annotation.config.style.setDefaultToolStyles({
    ...annotation.config.style.getDefaultToolStyles(),
    global: { ...(annotation.config.style.getDefaultToolStyles().global ?? {}), textBoxVisibility: visible },
  } as never)
}
