import { describe, expect, it } from 'vitest'
import { checkPhoto, ID_NUMBER_RE, PHONE_RE, PHOTO_MAX_BYTES } from '../validators'

describe('registration validators', () => {
  it('accepts JPEG/PNG up to 10 MB only', () => {
    expect(checkPhoto({ type: 'image/jpeg', size: 1000 })).toBeNull()
    expect(checkPhoto({ type: 'image/png', size: PHOTO_MAX_BYTES })).toBeNull()
    expect(checkPhoto({ type: 'image/png', size: PHOTO_MAX_BYTES + 1 })).toBe('size')
    expect(checkPhoto({ type: 'image/gif', size: 10 })).toBe('type')
    expect(checkPhoto({ type: 'application/pdf', size: 10, name: 'a.jpg' })).toBe('type')
    expect(checkPhoto({ type: '', size: 10, name: 'scan.JPEG' })).toBeNull()
  })

  it('checks phone and ID number formats', () => {
    expect(PHONE_RE.test('13800138000')).toBe(true)
    expect(PHONE_RE.test('12800138000')).toBe(false)
    expect(ID_NUMBER_RE.test('11010519491231002X')).toBe(true)
    expect(ID_NUMBER_RE.test('1101051949123100')).toBe(false)
  })
})
