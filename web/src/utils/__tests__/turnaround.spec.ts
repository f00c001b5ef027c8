import { describe, expect, it } from 'vitest'
import { spanParts, tatStanding } from '../turnaround'

const start = '2026-12-08T00:00:00Z'
const due = '2026-12-08T01:00:00Z' // a 60-minute limit
const at = (minutes: number) => Date.parse(start) + minutes * 60000

describe('tatStanding (UX.md R3)', () => {
  it('is ok before 80 % of the limit, amber from 80 %, red once the due time has passed', () => {
    expect(tatStanding(at(10), start, due)).toEqual({ state: 'ok', remainingMs: 50 * 60000 })
    expect(tatStanding(at(47.9), start, due).state).toBe('ok')
    expect(tatStanding(at(48), start, due).state).toBe('warning')
    expect(tatStanding(at(59), start, due).state).toBe('warning')
    expect(tatStanding(at(60), start, due).state).toBe('overdue')
    expect(tatStanding(at(75), start, due)).toEqual({ state: 'overdue', remainingMs: -15 * 60000 })
  })
})

describe('spanParts', () => {
  it('rounds up to the minute and splits days, hours and minutes', () => {
    expect(spanParts(30_001)).toEqual({ days: 0, hours: 0, minutes: 1 })
    expect(spanParts(65 * 60000)).toEqual({ days: 0, hours: 1, minutes: 5 })
    expect(spanParts(-(26 * 60 + 3) * 60000)).toEqual({ days: 1, hours: 2, minutes: 3 })
    expect(spanParts(-30.7 * 60000)).toEqual({ days: 0, hours: 0, minutes: 30 })
  })
})
