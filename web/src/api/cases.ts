import { cleanParams, http } from './http'
import type { CaseCounts, CaseDetail, CaseDiagram, CaseItem, NewCase, Paged } from './types'

/** The filters the case list and its chip counts share (REC-02/03/07); dates are platform days, YYYY-MM-DD. */
export interface CaseFilterQuery {
  status?: string
  q?: string
  emergency?: '' | 'true' | 'false'
  /** 检查类别 (an exam's modality). */
  modality?: string
  /** 申请医院, within what the caller may see. */
  institution_id?: number | ''
  date_from?: string
  date_to?: string
}

export interface CaseQuery extends CaseFilterQuery {
  /** A status chip: cases with an exam in this status (UX.md R2). */
  exam_status?: string
  /** The 已超时 chip: open cases past their due time (UX.md R3). */
  overdue?: '' | 'true'
  page?: number
  page_size?: number
  /** 'due': open cases by 剩余时限, the most urgent first (UX.md R3). */
  sort?: 'default' | 'due'
}

export async function listCases(query: CaseQuery): Promise<Paged<CaseItem>> {
  const { data } = await http.get<Paged<CaseItem>>('/cases', { params: cleanParams({ ...query }) })
  return data
}

/** Chip counts over the date window (default: the last 7 days), with the same filters but the chips' own. */
export async function caseCounts(query: CaseFilterQuery): Promise<CaseCounts> {
  const { data } = await http.get<CaseCounts>('/cases/counts', { params: cleanParams({ ...query }) })
  return data
}

export async function getCase(id: number | string): Promise<CaseDetail> {
  const { data } = await http.get<CaseDetail>(`/cases/${id}`)
  return data
}

/** The caller renders `validation_error` field messages, so the toast is suppressed. */
export async function createCase(body: NewCase): Promise<CaseDetail> {
  const { data } = await http.post<CaseDetail>('/cases', body, { silent: true })
  return data
}

export async function getCaseDiagram(id: number | string): Promise<CaseDiagram> {
  const { data } = await http.get<CaseDiagram>(`/cases/${id}/diagram`)
  return data
}
