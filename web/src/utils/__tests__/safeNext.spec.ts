import { describe, expect, it } from 'vitest'
import { safeNext } from '../safeNext'

describe('safeNext', () => {
  it('keeps same-origin relative paths with query and hash', () => {
    expect(safeNext('/admin/users?page=2#top')).toBe('/admin/users?page=2#top')
    expect(safeNext('/home')).toBe('/home')
  })

  it.each([
    ['//evil.com', '/'],
    ['https://evil.com', '/'],
    ['/\\evil.com', '/'],
    ['\\\\evil.com', '/'],
    ['/%2F%2Fevil.com', '/'],
    ['/%5cevil.com', '/'],
    ['javascript:alert(1)', '/'],
    ['home', '/'],
    ['', '/'],
    [' /home', '/'],
    ['/ho\nme', '/'],
  ])('rejects %j', (input, expected) => {
    expect(safeNext(input)).toBe(expected)
  })

  it('handles non-string query values and custom fallbacks', () => {
    expect(safeNext(undefined)).toBe('/')
    expect(safeNext(null, '/home')).toBe('/home')
    expect(safeNext(['/profile', '/x'])).toBe('/profile')
    expect(safeNext(['//evil.com'], '/home')).toBe('/home')
  })
})
