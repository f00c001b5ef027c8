import { cleanParams, http } from './http'
import type { Permission, Role } from './types'

export interface RoleQuery {
  q?: string
  enabled?: '' | 'true' | 'false'
}

export interface NewRole {
  code: string
  name: string
  description: string
  institution_id: number | null
  permissions: string[]
}

export async function listRoles(query: RoleQuery = {}): Promise<Role[]> {
  const { data } = await http.get<Role[]>('/roles', { params: cleanParams({ ...query }) })
  return data
}

export async function createRole(role: NewRole): Promise<Role> {
  const { data } = await http.post<Role>('/roles', role, { silent: true })
  return data
}

export async function updateRole(id: number, patch: { name?: string; description?: string; enabled?: boolean }): Promise<void> {
  await http.patch(`/roles/${id}`, patch)
}

export async function setRolePermissions(id: number, permissions: string[]): Promise<void> {
  await http.put(`/roles/${id}/permissions`, { permissions })
}

export async function deleteRole(id: number): Promise<void> {
  await http.delete(`/roles/${id}`)
}

export async function listPermissions(): Promise<Permission[]> {
  const { data } = await http.get<Permission[]>('/permissions')
  return data
}
