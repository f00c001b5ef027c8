import { describe, expect, it } from 'vitest'
import { roleAllowedAt, roleOptionLabel, roleScopeKey, roleScopeNote } from '@/utils/roleScope'

describe('roleScope (issue 11: where a role may be held)', () => {
  it('allows any-scope roles everywhere and central-only roles at the central hospital only', () => {
    expect(roleAllowedAt({ scope: 'any' }, 'member')).toBe(true)
    expect(roleAllowedAt({ scope: 'central' }, 'central')).toBe(true)
    expect(roleAllowedAt({ scope: 'central' }, 'member')).toBe(false)
    expect(roleAllowedAt({ scope: 'member' }, 'central')).toBe(false)
    expect(roleAllowedAt({ scope: null }, 'central')).toBe(false)
  })

  it('names the reason with an i18n key, never a machine code', () => {
    expect(roleScopeNote({ scope: 'central' }, 'member')).toBe('onlyCentral')
    expect(roleScopeNote({ scope: 'member' }, 'central')).toBe('onlyMember')
    expect(roleScopeNote({ scope: null }, 'member')).toBe('notAssignable')
    expect(roleScopeNote({ scope: 'any' }, 'member')).toBeNull()
  })

  it('labels a role option by its name and reason, never its code', () => {
    const t = (key: string) => ({ 'roles.onlyCentral': '仅限中心医院' })[key] ?? key
    const l1 = { code: 'report_l1', name: '初级报告医生', scope: 'central' as const }
    expect(roleOptionLabel(l1, 'member', t)).toBe('初级报告医生 · 仅限中心医院')
    expect(roleOptionLabel(l1, 'central', t)).toBe('初级报告医生')
    expect(roleOptionLabel(l1, 'member', t)).not.toContain('report_l1')
  })

  it('names where each role may be granted for the role list', () => {
    expect(roleScopeKey({ scope: 'any' })).toBe('grantAny')
    expect(roleScopeKey({ scope: 'central' })).toBe('onlyCentral')
    expect(roleScopeKey({ scope: 'member' })).toBe('onlyMember')
    expect(roleScopeKey({ scope: null })).toBe('notAssignable')
  })
})
