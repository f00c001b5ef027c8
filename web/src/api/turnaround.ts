import { http } from './http'
import type { InstitutionRef } from './types'

/** 报告时限规则 (UX.md R3; GET/POST/PUT/DELETE /api/turnaround-rules, permission tat.manage). */
export type TatPriority = 'emergency' | 'routine'
export type TatPatientClass = 'outpatient' | 'inpatient'

export interface TurnaroundRule {
  id: number
  name: string
  institution: InstitutionRef | null
  modality: string | null
  body_part_keyword: string | null
  priority: TatPriority | null
  patient_class: TatPatientClass | null
  limit_minutes: number
  working_hours: boolean
  enabled: boolean
  version: number
  updated_at: string
}

export interface TurnaroundRuleInput {
  name: string
  institution_id: number | null
  modality: string | null
  body_part_keyword: string | null
  priority: TatPriority | null
  patient_class: TatPatientClass | null
  limit_minutes: number
  working_hours: boolean
  enabled: boolean
}

/** The rules in the order they are picked: the most specific first. */
export async function listTurnaroundRules(): Promise<TurnaroundRule[]> {
  const { data } = await http.get<TurnaroundRule[]>('/turnaround-rules')
  return data
}

export async function createTurnaroundRule(body: TurnaroundRuleInput): Promise<TurnaroundRule> {
  const { data } = await http.post<TurnaroundRule>('/turnaround-rules', body, { silent: true })
  return data
}

/** 409 `stale_version` when someone changed the rule meanwhile. */
export async function updateTurnaroundRule(id: number, body: TurnaroundRuleInput & { version: number }): Promise<TurnaroundRule> {
  const { data } = await http.put<TurnaroundRule>(`/turnaround-rules/${id}`, body, { silent: true })
  return data
}

export async function deleteTurnaroundRule(id: number): Promise<void> {
  await http.delete(`/turnaround-rules/${id}`)
}
