/**
 * Corner text (REQ: VIEW-13): the items a user puts in each corner (engine/settings/registry.py CORNER_ITEMS),
 * per modality when the user has set that, and their Chinese rendering from an instance's DICOM JSON.
 */
import { type DicomJson, tagNumber, tagString } from './dicomweb'
import { formatWindow } from './voi'

export const CORNERS = ['top_left', 'top_right', 'bottom_left', 'bottom_right'] as const
export type Corner = (typeof CORNERS)[number]
export type CornerItem =
  | 'patient_name'
  | 'patient_id'
  | 'sex_age'
  | 'study_date'
  | 'study_description'
  | 'series_description'
  | 'modality'
  | 'institution'
  | 'series_number'
  | 'instance_number'
  | 'slice_location'
  | 'slice_thickness'
  | 'window'
  | 'zoom'
export type CornerConfig = Record<Corner, CornerItem[]>

export const DEFAULT_CORNERS: CornerConfig = {
  top_left: ['patient_name', 'patient_id', 'sex_age'],
  top_right: ['institution', 'study_date', 'study_description'],
  bottom_left: ['series_number', 'instance_number', 'slice_location', 'slice_thickness'],
  bottom_right: ['window', 'zoom'],
}

/** Chinese names of the items (the settings screen and the corner editor). */
export const CORNER_ITEM_LABELS: Record<CornerItem, string> = {
  patient_name: '姓名',
  patient_id: '患者编号',
  sex_age: '性别 / 年龄',
  study_date: '检查日期',
  study_description: '检查描述',
  series_description: '序列描述',
  modality: '设备类型',
  institution: '医院',
  series_number: '序列号',
  instance_number: '图像号',
  slice_location: '层面位置',
  slice_thickness: '层厚',
  window: '窗宽窗位',
  zoom: '缩放',
}

export function cornerConfigFor(
  modality: string,
  base: CornerConfig,
  byModality: Record<string, CornerConfig> | undefined,
): CornerConfig {
  return byModality?.[modality] ?? base
}

export interface ViewState {
  index: number
  total: number
  center: number | null
  width: number | null
  zoom: number
}

const SEX: Record<string, string> = { M: '男', F: '女', O: '其他' }

/** "Wang^Xiaoming=王^小明" → the ideographic group if there is one, else the alphabetic one, ^ as a space. */
export function personName(ds: DicomJson, tag: string): string {
  const v = ds[tag]?.Value?.[0] as { Alphabetic?: string; Ideographic?: string } | string | undefined
  if (!v) return ''
  if (typeof v === 'string') return v.replace(/\^/g, ' ').trim()
  const name = v.Ideographic || v.Alphabetic || ''
  return name.replace(/\^+/g, ' ').trim()
}

function age(raw: string): string {
  const m = raw.match(/^(\d{3})([DWMY])$/)
  if (!m) return raw
  const unit = { D: '天', W: '周', M: '月', Y: '岁' }[m[2] as 'D' | 'W' | 'M' | 'Y']
  return `${Number(m[1])}${unit}`
}

function date(raw: string): string {
  return /^\d{8}$/.test(raw) ? `${raw.slice(0, 4)}-${raw.slice(4, 6)}-${raw.slice(6)}` : raw
}

function num(n: number | undefined, digits = 1): string {
  return n === undefined ? '' : String(Math.round(n * 10 ** digits) / 10 ** digits)
}

export function cornerItem(item: CornerItem, ds: DicomJson, view: ViewState): string {
  switch (item) {
    case 'patient_name':
      return personName(ds, '00100010')
    case 'patient_id':
      return tagString(ds, '00100020') ? `ID：${tagString(ds, '00100020')}` : ''
    case 'sex_age': {
      const sex = SEX[tagString(ds, '00100040')] ?? ''
      return [sex, age(tagString(ds, '00101010'))].filter(Boolean).join(' / ')
    }
    case 'study_date':
      return date(tagString(ds, '00080020'))
    case 'study_description':
      return tagString(ds, '00081030')
    case 'series_description':
      return tagString(ds, '0008103E')
    case 'modality':
      return tagString(ds, '00080060')
    case 'institution':
      return tagString(ds, '00080080')
    case 'series_number':
      return tagString(ds, '00200011') ? `序列：${tagString(ds, '00200011')}` : ''
    case 'instance_number':
      return `图像：${view.index + 1} / ${view.total}`
    case 'slice_location': {
      const v = tagNumber(ds, '00201041')
      return v === undefined ? '' : `位置：${num(v)} mm`
    }
    case 'slice_thickness': {
      const v = tagNumber(ds, '00180050')
      return v === undefined ? '' : `层厚：${num(v)} mm`
    }
    case 'window':
      return view.center === null || view.width === null ? '' : formatWindow(view.center, view.width)
    case 'zoom':
      return `缩放：${Math.round(view.zoom * 100)}%`
  }
}

export function cornerLines(cfg: CornerConfig, ds: DicomJson, view: ViewState): Record<Corner, string[]> {
  const out = {} as Record<Corner, string[]>
  for (const c of CORNERS) out[c] = (cfg[c] ?? []).map((i) => cornerItem(i, ds, view)).filter(Boolean)
  return out
}
