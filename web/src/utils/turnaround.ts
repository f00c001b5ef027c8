/**
 * 剩余时限 (UX.md R3): where a case stands against its turnaround limit. The server fixes the due time when the
 * case is created (engine/cases/turnaround.py); the list counts down to it. Amber from 80 % of the time between
 * the request and the due time, red once it has passed.
 */
export type TatState = 'ok' | 'warning' | 'overdue'

export const WARNING_FRACTION = 0.8

export interface TatStanding {
  state: TatState
  /** Milliseconds left (negative once overdue). */
  remainingMs: number
}

export function tatStanding(now: number, startIso: string, dueIso: string): TatStanding {
  const start = Date.parse(startIso)
  const due = Date.parse(dueIso)
  const remainingMs = due - now
  if (remainingMs <= 0) return { state: 'overdue', remainingMs }
  const span = due - start
  const elapsed = now - start
  return { state: span > 0 && elapsed >= WARNING_FRACTION * span ? 'warning' : 'ok', remainingMs }
}

/**
 * Days, hours and minutes of a span: time left rounds up to the minute (30 s left is "1分钟", never "0"), time
 * overdue (negative) rounds down (30 min 40 s late is "30分钟").
 */
export function spanParts(ms: number): { days: number; hours: number; minutes: number } {
  const total = ms >= 0 ? Math.ceil(ms / 60000) : Math.floor(-ms / 60000)
  return { days: Math.floor(total / 1440), hours: Math.floor((total % 1440) / 60), minutes: total % 60 }
}
