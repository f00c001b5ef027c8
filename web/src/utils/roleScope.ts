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

/** The i18n key (under `roles.`) of where `role` may be granted, for the role list (issue 11). */
export function roleScopeKey(role: Pick<Role, 'scope'>): 'grantAny' | 'onlyCentral' | 'onlyMember' | 'notAssignable' {
  if (role.scope === undefined || role.scope === 'any') return 'grantAny'
  if (role.scope === 'central') return 'onlyCentral'
  if (role.scope === 'member') return 'onlyMember'
  return 'notAssignable'
}

/**
 * A role picker's option text: the role's Chinese name, and why it cannot be granted here if it cannot — never the
 * role's code (UX: no raw codes on screen).
 */
export function roleOptionLabel(
  role: Pick<Role, 'name' | 'scope'>,
  kind: string | undefined,
  translate: (key: string) => string,
): string {
  const note = roleScopeNote(role, kind)
  return note ? `${role.name} · ${translate(`roles.${note}`)}` : role.name
}
