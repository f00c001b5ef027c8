/**
 * Corner text (REQ: VIEW-13): the items a user puts in each corner (engine/settings/registry.py CORNER_ITEMS),
 * per modality when the user has set that, and their Chinese rendering from an instance's DICOM JSON.
 */
import { type DicomJson, tagNumber, tagString } from './dicomweb'
import { i18n } from '@/i18n'
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
  get patient_name() { return i18n.global.t('viewer.cornerItem.patient_name') },
  get patient_id() { return i18n.global.t('viewer.cornerItem.patient_id') },
  get sex_age() { return i18n.global.t('viewer.cornerItem.sex_age') },
  get study_date() { return i18n.global.t('viewer.cornerItem.study_date') },
  get study_description() { return i18n.global.t('viewer.cornerItem.study_description') },
  get series_description() { return i18n.global.t('viewer.cornerItem.series_description') },
  get modality() { return i18n.global.t('viewer.cornerItem.modality') },
  get institution() { return i18n.global.t('viewer.cornerItem.institution') },
  get series_number() { return i18n.global.t('viewer.cornerItem.series_number') },
  get instance_number() { return i18n.global.t('viewer.cornerItem.instance_number') },
  get slice_location() { return i18n.global.t('viewer.cornerItem.slice_location') },
  get slice_thickness() { return i18n.global.t('viewer.cornerItem.slice_thickness') },
  get window() { return i18n.global.t('viewer.cornerItem.window') },
  get zoom() { return i18n.global.t('viewer.cornerItem.zoom') },
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

const SEX: Record<string, string> = { get M() { return i18n.global.t('viewer.corner.sexM') }, get F() { return i18n.global.t('viewer.corner.sexF') }, get O() { return i18n.global.t('viewer.corner.sexO') } }

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
  const unit = { D: 'ageD', W: 'ageW', M: 'ageM', Y: 'ageY' }[m[2] as 'D' | 'W' | 'M' | 'Y']
  return i18n.global.t(`viewer.corner.${unit}`, { n: Number(m[1]) })
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
      return tagString(ds, '00100020') ? i18n.global.t('viewer.corner.patientId', { id: tagString(ds, '00100020') }) : ''
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
      return tagString(ds, '00200011') ? i18n.global.t('viewer.corner.seriesNumber', { n: tagString(ds, '00200011') }) : ''
    case 'instance_number':
      return i18n.global.t('viewer.corner.image', { n: view.index + 1, total: view.total })
    case 'slice_location': {
      const v = tagNumber(ds, '00201041')
      return v === undefined ? '' : i18n.global.t('viewer.corner.location', { v: num(v) })
    }
    case 'slice_thickness': {
      const v = tagNumber(ds, '00180050')
      return v === undefined ? '' : i18n.global.t('viewer.corner.thickness', { v: num(v) })
    }
    case 'window':
      return view.center === null || view.width === null ? '' : formatWindow(view.center, view.width)
    case 'zoom':
      return i18n.global.t('viewer.corner.zoom', { v: Math.round(view.zoom * 100) })
  }
}

export function cornerLines(cfg: CornerConfig, ds: DicomJson, view: ViewState): Record<Corner, string[]> {
  const out = {} as Record<Corner, string[]>
  for (const c of CORNERS) out[c] = (cfg[c] ?? []).map((i) => cornerItem(i, ds, view)).filter(Boolean)
  return out
}
