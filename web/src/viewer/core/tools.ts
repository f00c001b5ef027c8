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
import { i18n } from '@/i18n'
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
  { id: 'wl', toolName: WindowLevelTool.toolName, get label() { return i18n.global.t('viewer.tool.wl') }, bindingId: 'viewer.tool-wl', measurement: false },
  { id: 'pan', toolName: PanTool.toolName, get label() { return i18n.global.t('viewer.tool.pan') }, bindingId: 'viewer.tool-pan', measurement: false },
  { id: 'zoom', toolName: ZoomTool.toolName, get label() { return i18n.global.t('viewer.tool.zoom') }, bindingId: 'viewer.tool-zoom', measurement: false },
  { id: 'magnify', toolName: MagnifyTool.toolName, get label() { return i18n.global.t('viewer.tool.magnify') }, bindingId: 'viewer.tool-magnify', measurement: false },
  { id: 'rotate', toolName: PlanarRotateTool.toolName, get label() { return i18n.global.t('viewer.tool.rotate') }, bindingId: 'viewer.tool-rotate', measurement: false },
  { id: 'length', toolName: LengthTool.toolName, get label() { return i18n.global.t('viewer.tool.length') }, bindingId: 'viewer.tool-length', measurement: true },
  { id: 'angle', toolName: AngleTool.toolName, get label() { return i18n.global.t('viewer.tool.angle') }, bindingId: 'viewer.tool-angle', measurement: true },
  { id: 'cobb', toolName: CobbAngleTool.toolName, get label() { return i18n.global.t('viewer.tool.cobb') }, bindingId: 'viewer.tool-cobb', measurement: true },
  { id: 'ellipse', toolName: EllipticalROITool.toolName, get label() { return i18n.global.t('viewer.tool.ellipse') }, bindingId: 'viewer.tool-ellipse', measurement: true },
  { id: 'circle', toolName: CircleROITool.toolName, get label() { return i18n.global.t('viewer.tool.circle') }, bindingId: 'viewer.tool-circle', measurement: true },
  { id: 'rectangle', toolName: RectangleROITool.toolName, get label() { return i18n.global.t('viewer.tool.rectangle') }, bindingId: 'viewer.tool-rectangle', measurement: true },
  { id: 'polygon', toolName: PlanarFreehandROITool.toolName, get label() { return i18n.global.t('viewer.tool.polygon') }, bindingId: 'viewer.tool-polygon', measurement: true },
  { id: 'freehand', toolName: PlanarFreehandROITool.toolName, get label() { return i18n.global.t('viewer.tool.freehand') }, bindingId: 'viewer.tool-freehand', measurement: true },
  { id: 'probe', toolName: ProbeTool.toolName, get label() { return i18n.global.t('viewer.tool.probe') }, bindingId: 'viewer.tool-probe', measurement: true },
  { id: 'arrow', toolName: ArrowAnnotateTool.toolName, get label() { return i18n.global.t('viewer.tool.arrow') }, bindingId: 'viewer.tool-arrow', measurement: true },
  { id: 'text', toolName: LabelTool.toolName, get label() { return i18n.global.t('viewer.tool.text') }, bindingId: 'viewer.tool-text', measurement: true },
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
    getTextCallback: ask(i18n.global.t('viewer.annotation.arrowText')),
    changeTextCallback: (_data: unknown, _evt: unknown, done: (t: string) => void) => ask(i18n.global.t('viewer.annotation.editText'))(done),
  })
  group.addTool(LabelTool.toolName, {
    getTextCallback: ask(i18n.global.t('viewer.annotation.text')),
    changeTextCallback: (_data: unknown, _evt: unknown, done: (t: string) => void) => ask(i18n.global.t('viewer.annotation.editText'))(done),
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
