/**
 * Chinese text of the measurement labels (REQ: VIEW-08; the UI names no raw English terms): the ROI statistics —
 * area, mean, max, min, SD in the modality's unit (HU for CT, SUV for PET where the tags allow) — and the probe.
 */

export interface RoiStats {
  area?: number
  mean?: number
  max?: number
  min?: number
  stdDev?: number
  perimeter?: number
  isEmptyArea?: boolean
  areaUnit?: string
  modalityUnit?: string
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

export function round(v: number): string {
  const a = Math.abs(v)
  const digits = a >= 100 ? 1 : a >= 1 ? 2 : 3
  return String(Number(v.toFixed(digits)))
}

function unit(u: string | undefined): string {
  if (!u || u === 'raw') return ''
  return ` ${u}`
}

export function roiTextLines(stats: RoiStats | undefined): string[] {
  if (!stats) return []
  const u = unit(stats.modalityUnit)
  const out: string[] = []
  if (isNum(stats.area)) out.push(stats.isEmptyArea ? '面积：斜切面不支持' : `面积：${round(stats.area)}${unit(stats.areaUnit)}`)
  if (isNum(stats.perimeter)) out.push(`周长：${round(stats.perimeter)} mm`)
  if (isNum(stats.mean)) out.push(`均值：${round(stats.mean)}${u}`)
  if (isNum(stats.stdDev)) out.push(`标准差：${round(stats.stdDev)}${u}`)
  if (isNum(stats.max)) out.push(`最大：${round(stats.max)}${u}`)
  if (isNum(stats.min)) out.push(`最小：${round(stats.min)}${u}`)
  return out
}

export function probeTextLines(stats: { value?: number | number[]; modalityUnit?: string | string[] } | undefined): string[] {
  if (!stats || stats.value === undefined) return []
  if (Array.isArray(stats.value)) {
    const units = Array.isArray(stats.modalityUnit) ? stats.modalityUnit : []
    return stats.value.map((v, i) => `值：${round(v)}${unit(units[i])}`)
  }
  return [`值：${round(stats.value)}${unit(Array.isArray(stats.modalityUnit) ? stats.modalityUnit[0] : stats.modalityUnit)}`]
}

/** Cornerstone's `getTextLines(data, targetId)` for a tool whose cachedStats are ROI statistics. */
export function roiGetTextLines(data: { cachedStats?: Record<string, RoiStats> }, targetId: string): string[] {
  return roiTextLines(data.cachedStats?.[targetId])
}

export function probeGetTextLines(
  data: { cachedStats?: Record<string, { value?: number | number[]; modalityUnit?: string | string[] }> },
  targetId: string,
): string[] {
  return probeTextLines(data.cachedStats?.[targetId])
}
