/**
 * 临床资料补充 (issue 14): a case's clinical queries, and the tasks of process kinds other than remote diagnosis
 * (/api/process-tasks: who sees and takes them is decided by the kind's rule on the server).
 */
import { http } from './http'
import type { Paged, TaskForm, TaskItem } from './types'

export interface ClinicalQuery {
  id: number
  /** info: 补充临床资料; images: 补传影像 (completed by the arrival of the images) */
  kind: 'info' | 'images'
  kind_name: string
  status: 'waiting' | 'awaiting_images' | 'overdue' | 'answered' | 'images_arrived' | 'unavailable' | 'incident'
  status_name: string
  question: string
  due: string
  asked_by: string | null
  asked_at: string | null
  answer: string
  unavailable: boolean
  reason: string
  answered_at: string | null
  overdue: boolean
}

export interface ProcessTaskItem extends TaskItem {
  process_id: string
  process_name: string
  subject: string
}

export async function listClinicalQueries(caseId: number | string): Promise<ClinicalQuery[]> {
  const { data } = await http.get<ClinicalQuery[]>(`/cases/${caseId}/clinical-queries`)
  return data
}

export async function startClinicalQuery(
  caseId: number | string,
  body: { question: string; due?: string; request_images?: boolean },
): Promise<ClinicalQuery> {
  const { data } = await http.post<ClinicalQuery>(`/cases/${caseId}/clinical-queries`, body)
  return data
}

export async function listProcessTasks(scope: 'mine' | 'open'): Promise<Paged<ProcessTaskItem>> {
  const { data } = await http.get<Paged<ProcessTaskItem>>('/process-tasks', { params: { scope, page_size: 100 } })
  return data
}

export async function claimProcessTask(id: number): Promise<ProcessTaskItem> {
  const { data } = await http.post<ProcessTaskItem>(`/process-tasks/${id}/claim`)
  return data
}

export async function getProcessTaskForm(id: number): Promise<TaskForm> {
  const { data } = await http.get<TaskForm>(`/process-tasks/${id}/form`)
  return data
}

/** `form_invalid` is rendered by the caller (silent). */
export async function completeProcessTask(id: number, formData: Record<string, unknown>): Promise<void> {
  await http.post(`/process-tasks/${id}/complete`, { data: formData }, { silent: true })
}
