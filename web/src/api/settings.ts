import { http } from './http'

/** Where an effective value comes from: the user's own, their role's, their institution's, or built in. */
export type SettingSource = 'user' | 'role' | 'institution' | 'builtin'

export interface EffectiveSetting {
  key: string
  value: unknown
  source: SettingSource
}

/** Every registered key's effective value for the logged-in user (GET /api/me/settings). */
export async function getMySettings(): Promise<EffectiveSetting[]> {
  const { data } = await http.get<EffectiveSetting[]>('/me/settings', { silent: true })
  return data
}

export async function putMySetting(key: string, value: unknown): Promise<EffectiveSetting> {
  const { data } = await http.put<EffectiveSetting>(`/me/settings/${encodeURIComponent(key)}`, { value })
  return data
}

/** Back to the default: answers the value now in effect. */
export async function deleteMySetting(key: string): Promise<EffectiveSetting> {
  const { data } = await http.delete<EffectiveSetting>(`/me/settings/${encodeURIComponent(key)}`)
  return data
}

// ---- the administrator's institution and role defaults (setting.default.manage) --------------------------------------

/** A registered key with its Chinese name and built-in default (GET /api/settings/keys). */
export interface SettingKeyInfo {
  key: string
  name: string
  default: unknown
}

export interface SettingRole {
  id: number
  code: string
  name: string
  /** Menu codes a holder of the role opens. */
  menus: string[]
}

/** A default set for the institution (role null) or one of its roles. */
export interface SettingDefault {
  key: string
  name: string
  value: unknown
  role: { id: number; code: string; name: string } | null
  updated_at: string
}

export async function getSettingKeys(): Promise<SettingKeyInfo[]> {
  const { data } = await http.get<SettingKeyInfo[]>('/settings/keys')
  return data
}

export async function getSettingRoles(): Promise<SettingRole[]> {
  const { data } = await http.get<SettingRole[]>('/settings/roles')
  return data
}

export async function getSettingDefaults(): Promise<SettingDefault[]> {
  const { data } = await http.get<SettingDefault[]>('/settings/defaults')
  return data
}

function defaultUrl(key: string, roleId: number | null): string {
  const k = encodeURIComponent(key)
  return roleId === null ? `/settings/defaults/institution/${k}` : `/settings/defaults/roles/${roleId}/${k}`
}

/** Set the institution's default (roleId null) or a role's. */
export async function putSettingDefault(key: string, roleId: number | null, value: unknown): Promise<SettingDefault> {
  const { data } = await http.put<SettingDefault>(defaultUrl(key, roleId), { value })
  return data
}

export async function deleteSettingDefault(key: string, roleId: number | null): Promise<void> {
  await http.delete(defaultUrl(key, roleId))
}
