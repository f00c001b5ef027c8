import { cleanParams, http } from './http'
import type { Paged, UserItem } from './types'

export interface UserQuery {
  q?: string
  institution_id?: number | ''
  enabled?: '' | 'true' | 'false'
  page?: number
  page_size?: number
}

export interface NewUser {
  username: string
  full_name: string
  institution_id: number
  department_id: number | null
  title: string
  phone: string
  id_number: string
}

export interface UserPatch {
  full_name?: string
  department_id?: number | null
  title?: string
  phone?: string
  enabled?: boolean
}

export async function listUsers(query: UserQuery): Promise<Paged<UserItem>> {
  const { data } = await http.get<Paged<UserItem>>('/users', { params: cleanParams({ ...query }) })
  return data
}

export async function createUser(user: NewUser): Promise<{ id: number; initial_password: string }> {
  const { data } = await http.post('/users', user, { silent: true })
  return data
}

export async function updateUser(id: number, patch: UserPatch): Promise<void> {
  await http.patch(`/users/${id}`, patch)
}

export async function unlockUser(id: number): Promise<void> {
  await http.post(`/users/${id}/unlock`)
}

export async function resetUserPassword(id: number): Promise<{ temporary_password: string }> {
  const { data } = await http.post(`/users/${id}/reset-password`)
  return data
}

export async function setUserRoles(id: number, roleIds: number[]): Promise<void> {
  await http.put(`/users/${id}/roles`, { role_ids: roleIds })
}
