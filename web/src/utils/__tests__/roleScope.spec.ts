import { describe, expect, it } from 'vitest'
import { roleAllowedAt, roleScopeNote } from '@/utils/roleScope'

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
})
