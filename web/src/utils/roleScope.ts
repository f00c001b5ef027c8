import type { Role } from '@/api/types'

/**
 * May an account of an institution of `kind` ('central' | 'member') hold `role`? Mirrors the server's rule
 * (engine/accounts/permissions.py scope_allows); the server still decides — this only disables what it would refuse.
 */
export function roleAllowedAt(role: Pick<Role, 'scope'>, kind: string | undefined): boolean {
  if (role.scope === undefined || role.scope === 'any') return true
  if (role.scope === null) return false
  return kind === undefined || role.scope === kind
}

/** The i18n key (under `roles.`) saying why `role` cannot be granted at `kind`, or null when it can. */
export function roleScopeNote(
  role: Pick<Role, 'scope'>,
  kind: string | undefined,
): 'onlyCentral' | 'onlyMember' | 'notAssignable' | null {
  if (roleAllowedAt(role, kind)) return null
  if (role.scope === 'central') return 'onlyCentral'
  if (role.scope === 'member') return 'onlyMember'
  return 'notAssignable'
}
