import { describe, expect, it } from 'vitest'
import { useLatest } from '../useLatest'

describe('useLatest', () => {
  it('holds only for the newest begun request, per list', () => {
    const begin = useLatest()
    const other = useLatest()
    const first = begin()
    expect(first()).toBe(true)
    const second = begin()
    expect(first()).toBe(false)
    expect(second()).toBe(true)
    other() // another list's requests do not supersede this one's
    expect(second()).toBe(true)
  })
})
