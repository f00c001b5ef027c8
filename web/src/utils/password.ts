/**
 * Client-side pre-check of the password policy. The server is authoritative
 * (common-password list and the last-5 history are only checked there).
 */
export type PasswordRuleKey = 'length' | 'classes' | 'username'

export interface PasswordRuleResult {
  key: PasswordRuleKey
  ok: boolean
}

export interface PasswordContext {
  username?: string
  isAdmin?: boolean
}

export const MIN_LENGTH = 8
export const MIN_LENGTH_ADMIN = 12
export const MIN_CLASSES = 3

export function minLengthFor(isAdmin?: boolean): number {
  return isAdmin ? MIN_LENGTH_ADMIN : MIN_LENGTH
}

/** Number of character classes (upper, lower, digit, symbol) used. */
export function characterClassCount(password: string): number {
  let n = 0
  if (/[A-Z]/.test(password)) n++
  if (/[a-z]/.test(password)) n++
  if (/[0-9]/.test(password)) n++
  if (/[^A-Za-z0-9]/.test(password)) n++
  return n
}

export function checkPassword(password: string, ctx: PasswordContext = {}): PasswordRuleResult[] {
  const username = (ctx.username || '').trim().toLowerCase()
  return [
    { key: 'length', ok: password.length >= minLengthFor(ctx.isAdmin) },
    { key: 'classes', ok: characterClassCount(password) >= MIN_CLASSES },
    { key: 'username', ok: !username || !password.toLowerCase().includes(username) },
  ]
}

export function passwordPasses(password: string, ctx: PasswordContext = {}): boolean {
  return checkPassword(password, ctx).every((r) => r.ok)
}

/** The three administrators (三权分立) need 12 characters; the server applies the same rule. */
const ADMIN_ROLE_CODES = new Set(['sys_admin', 'sec_admin', 'audit_admin'])

export function isAdminRoleCode(code: string): boolean {
  return ADMIN_ROLE_CODES.has(code)
}
