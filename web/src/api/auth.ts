import { http, setCsrfToken } from './http'
import type { LoginResult, Me, MfaEnrollment, SessionInfo, StateResult } from './types'

export async function login(username: string, password: string): Promise<LoginResult> {
  const { data } = await http.post<LoginResult>('/auth/login', { username, password }, { silent: true })
  setCsrfToken(data.csrf_token)
  return data
}

export async function getMfaEnrollment(): Promise<MfaEnrollment> {
  const { data } = await http.post<MfaEnrollment>('/auth/mfa/enroll', undefined, { silent: true })
  return data
}

export async function verifyMfa(code: string): Promise<StateResult> {
  const { data } = await http.post<StateResult>('/auth/mfa', { code }, { silent: true })
  setCsrfToken(data.csrf_token)
  return data
}

export async function changePassword(oldPassword: string, newPassword: string): Promise<StateResult> {
  const { data } = await http.post<StateResult>(
    '/auth/password',
    { old_password: oldPassword, new_password: newPassword },
    { silent: true },
  )
  setCsrfToken(data.csrf_token)
  return data
}

export async function logout(): Promise<void> {
  try {
    await http.post('/auth/logout', null, { silent: true, skipAuthRedirect: true })
  } finally {
    setCsrfToken(null)
  }
}

/** GET /api/auth/me. Never triggers the global redirect: callers decide. */
export async function fetchMe(): Promise<Me> {
  const { data } = await http.get<Me>('/auth/me', { silent: true, skipAuthRedirect: true })
  setCsrfToken(data.csrf_token)
  return data
}

export async function listSessions(): Promise<SessionInfo[]> {
  const { data } = await http.get<SessionInfo[]>('/auth/sessions')
  return data
}

export async function revokeSession(id: string | number): Promise<void> {
  await http.delete(`/auth/sessions/${encodeURIComponent(String(id))}`)
}
