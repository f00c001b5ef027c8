import { describe, expect, it } from 'vitest'
import { formatDate, formatDateTime } from '../datetime'

describe('date formatter', () => {
  it('formats UTC instants as YYYY-MM-DD HH:mm in Asia/Shanghai (+08:00)', () => {
    expect(formatDateTime('2024-03-01T02:05:00Z')).toBe('2024-03-01 10:05')
    expect(formatDateTime('2024-03-01T02:05:59.999Z')).toBe('2024-03-01 10:05')
  })

  it('rolls over the date at 16:00 UTC', () => {
    expect(formatDateTime('2023-12-31T16:00:00Z')).toBe('2024-01-01 00:00')
    expect(formatDateTime('2024-02-28T23:30:00Z')).toBe('2024-02-29 07:30')
  })

  it('respects explicit offsets in the input', () => {
    expect(formatDateTime('2024-06-01T08:00:00+08:00')).toBe('2024-06-01 08:00')
    expect(formatDateTime('2024-06-01T00:00:00-05:00')).toBe('2024-06-01 13:00')
  })

  it('always matches the display pattern', () => {
    expect(formatDateTime(new Date(Date.UTC(2025, 0, 2, 3, 4)))).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/)
  })

  it('returns the placeholder for empty or invalid input', () => {
    expect(formatDateTime(null)).toBe('-')
    expect(formatDateTime('')).toBe('-')
    expect(formatDateTime('not a date', '')).toBe('')
  })

  it('formats dates in Shanghai', () => {
    expect(formatDate('2024-05-31T17:00:00Z')).toBe('2024-06-01')
  })
})
