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
