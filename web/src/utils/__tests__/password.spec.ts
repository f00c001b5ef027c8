import { describe, expect, it } from 'vitest'
import { characterClassCount, checkPassword, passwordPasses } from '../password'

function failed(password: string, ctx = {}): string[] {
  return checkPassword(password, ctx)
    .filter((r) => !r.ok)
    .map((r) => r.key)
}

describe('password policy pre-check', () => {
  it('accepts a strong password', () => {
    expect(failed('Xr7!kpLm')).toEqual([])
    expect(passwordPasses('Xr7!kpLm', { username: 'zhangsan' })).toBe(true)
  })

  it('requires 8 characters, 12 for administrators', () => {
    expect(failed('Ab1!xyz')).toContain('length')
    expect(failed('Ab1!xyzw')).not.toContain('length')
    expect(failed('Ab1!xyzw', { isAdmin: true })).toContain('length')
    expect(failed('Ab1!xyzwvuts', { isAdmin: true })).toEqual([])
  })

  it('requires at least 3 of upper, lower, digit, symbol', () => {
    expect(characterClassCount('abcdefgh')).toBe(1)
    expect(characterClassCount('abcdEFGH')).toBe(2)
    expect(characterClassCount('abcdEF12')).toBe(3)
    expect(characterClassCount('aB3#')).toBe(4)
    expect(failed('abcdEFGH')).toEqual(['classes'])
    expect(failed('abcdefg1#')).toEqual([])
    expect(failed('密码密码密码12A')).toEqual([])
  })

  it('rejects passwords containing the username, case-insensitively', () => {
    expect(failed('ZhangSan#2024', { username: 'zhangsan' })).toEqual(['username'])
    expect(failed('Li#Si2024xx', { username: 'zhangsan' })).toEqual([])
    expect(failed('Whatever#12', { username: '' })).toEqual([])
  })
})
