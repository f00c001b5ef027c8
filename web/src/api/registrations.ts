import { http, toFormData } from './http'
import type { RegistrationStatus, ReviewStatus } from './types'

export interface RegistrationFields {
  username: string
  password: string
  full_name: string
  institution_id: number | null
  department_id?: number | null
  title?: string
  phone: string
  id_number: string
  id_card_photo: File | null
  qualification_photo: File | null
}

export async function submitRegistration(fields: RegistrationFields): Promise<{ id: number; review_status: ReviewStatus }> {
  const { data } = await http.post('/registrations', toFormData({ ...fields }), { silent: true })
  return data
}

export async function queryRegistrationStatus(username: string, password: string): Promise<RegistrationStatus> {
  const { data } = await http.post<RegistrationStatus>('/registrations/status', { username, password }, { silent: true })
  return data
}

export type ResubmitFields = Partial<Omit<RegistrationFields, 'username' | 'password'>> & {
  username: string
  password: string
}

export async function resubmitRegistration(fields: ResubmitFields): Promise<{ review_status: ReviewStatus }> {
  const { data } = await http.post('/registrations/resubmit', toFormData({ ...fields }), { silent: true })
  return data
}
