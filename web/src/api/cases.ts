import { cleanParams, http } from './http'
import type { CaseDetail, CaseDiagram, CaseItem, NewCase, Paged } from './types'

export interface CaseQuery {
  status?: string
  q?: string
  emergency?: '' | 'true' | 'false'
  page?: number
  page_size?: number
  /** 'due': open cases by 剩余时限, the most urgent first (UX.md R3). */
  sort?: 'default' | 'due'
}

export async function listCases(query: CaseQuery): Promise<Paged<CaseItem>> {
  const { data } = await http.get<Paged<CaseItem>>('/cases', { params: cleanParams({ ...query }) })
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
