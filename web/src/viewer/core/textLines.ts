/**
 * Chinese text of the measurement labels (REQ: VIEW-08; the UI names no raw English terms): the ROI statistics —
 * area, mean, max, min, SD in the modality's unit (HU for CT, SUV for PET where the tags allow) — and the probe.
 */
import { i18n } from '@/i18n'

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
  if (isNum(stats.area)) out.push(stats.isEmptyArea ? i18n.global.t('viewer.stats.areaOblique') : i18n.global.t('viewer.stats.area', { v: round(stats.area), unit: unit(stats.areaUnit) }))
  if (isNum(stats.perimeter)) out.push(i18n.global.t('viewer.stats.perimeter', { v: round(stats.perimeter) }))
  if (isNum(stats.mean)) out.push(i18n.global.t('viewer.stats.mean', { v: round(stats.mean), unit: u }))
  if (isNum(stats.stdDev)) out.push(i18n.global.t('viewer.stats.stdDev', { v: round(stats.stdDev), unit: u }))
  if (isNum(stats.max)) out.push(i18n.global.t('viewer.stats.max', { v: round(stats.max), unit: u }))
  if (isNum(stats.min)) out.push(i18n.global.t('viewer.stats.min', { v: round(stats.min), unit: u }))
  return out
}

export function probeTextLines(stats: { value?: number | number[]; modalityUnit?: string | string[] } | undefined): string[] {
  if (!stats || stats.value === undefined) return []
  if (Array.isArray(stats.value)) {
    const units = Array.isArray(stats.modalityUnit) ? stats.modalityUnit : []
    return stats.value.map((v, i) => i18n.global.t('viewer.stats.value', { v: round(v), unit: unit(units[i]) }))
  }
  return [i18n.global.t('viewer.stats.value', { v: round(stats.value), unit: unit(Array.isArray(stats.modalityUnit) ? stats.modalityUnit[0] : stats.modalityUnit) })]
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
