import { cleanParams, http } from './http'
import type { CaseDetail, Doctor, Paged, TaskForm, TaskItem, TaskScope, WorkGroup } from './types'

export interface TaskQuery {
  scope: TaskScope
  claimed?: '' | 'true' | 'false'
  emergency?: '' | 'true' | 'false'
  q?: string
  page?: number
  page_size?: number
  /** 'due': by 剩余时限, the most urgent first (UX.md R3). */
  sort?: 'default' | 'due'
}

/** Overdue first, then emergency, then oldest (the server sorts; REC-10, UX.md R3). */
export async function listTasks(query: TaskQuery): Promise<Paged<TaskItem>> {
  const { data } = await http.get<Paged<TaskItem>>('/tasks', { params: cleanParams({ ...query }) })
  return data
}

/** 409 `already_claimed` is rendered by the caller (silent). */
export async function claimTask(id: number): Promise<TaskItem> {
  const { data } = await http.post<TaskItem>(`/tasks/${id}/claim`, undefined, { silent: true })
  return data
}

export async function releaseTask(id: number): Promise<TaskItem> {
  const { data } = await http.post<TaskItem>(`/tasks/${id}/release`)
  return data
}

export async function getTaskForm(id: number | string): Promise<TaskForm> {
  const { data } = await http.get<TaskForm>(`/tasks/${id}/form`)
  return data
}

/** Errors (`form_invalid`, `lock_lost`, …) are rendered by the form page (silent). */
export async function completeTask(
  id: number | string,
  body: { data: Record<string, unknown>; lock_token?: number },
): Promise<{ case: CaseDetail }> {
  const { data } = await http.post<{ case: CaseDetail }>(`/tasks/${id}/complete`, body, { silent: true })
  return data
}

export async function assignTask(id: number, userId: number): Promise<TaskItem> {
  const { data } = await http.post<TaskItem>(`/tasks/${id}/assign`, { user_id: userId })
  return data
}

export async function consultTask(id: number, userId: number): Promise<TaskItem> {
  const { data } = await http.post<TaskItem>(`/tasks/${id}/consult`, { user_id: userId })
  return data
}

export async function batchAssign(body: {
  task_ids: number[]
  user_id?: number
  group_code?: string
}): Promise<{ assigned: number }> {
  const { data } = await http.post<{ assigned: number }>('/tasks/batch-assign', body)
  return data
}

export interface DoctorQuery {
  institution_id?: number | ''
  q?: string
  role?: string
}

export async function listDoctors(query: DoctorQuery): Promise<Doctor[]> {
  const { data } = await http.get<Doctor[]>('/doctors', { params: cleanParams({ ...query }) })
  return data
}

export async function listGroups(): Promise<WorkGroup[]> {
  const { data } = await http.get<WorkGroup[]>('/groups')
  return data
}
