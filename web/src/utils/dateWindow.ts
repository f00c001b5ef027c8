/**
 * 我的诊断记录's date shortcuts (REQ: REC-03): 当天 / 昨天 / 3天内 / 7天内 as platform days (Asia/Shanghai),
 * whatever the browser's zone, in the `YYYY-MM-DD` form the API takes.
 */
import { formatDate } from './datetime'

export const DATE_SHORTCUTS = ['today', 'yesterday', 'days3', 'days7', 'custom'] as const
export type DateShortcut = (typeof DATE_SHORTCUTS)[number]
export const DEFAULT_DATE_SHORTCUT: DateShortcut = 'days7'

/** The platform day `offset` days from the one `now` falls on. */
export function platformDay(now: Date, offset = 0): string {
  const [y, m, d] = formatDate(now).split('-').map(Number)
  const day = new Date(Date.UTC(y, m - 1, d + offset))
  return day.toISOString().slice(0, 10)
}

/** The [from, to] days of a shortcut (both included); `custom` gives the picked range, or none. */
export function dateWindow(shortcut: DateShortcut, now: Date, custom?: [string, string] | null): [string, string] | null {
  switch (shortcut) {
    case 'today':
      return [platformDay(now), platformDay(now)]
    case 'yesterday':
      return [platformDay(now, -1), platformDay(now, -1)]
    case 'days3':
      return [platformDay(now, -2), platformDay(now)]
    case 'days7':
      return [platformDay(now, -6), platformDay(now)]
    case 'custom':
      return custom && custom[0] && custom[1] ? [custom[0], custom[1]] : null
  }
}
