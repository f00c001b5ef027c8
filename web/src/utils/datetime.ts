/** All times are shown in China Standard Time, whatever the browser's zone. */
export const DISPLAY_TIME_ZONE = 'Asia/Shanghai'

const dateTimeFormat = new Intl.DateTimeFormat('en-CA', {
  timeZone: DISPLAY_TIME_ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
})

const dateFormat = new Intl.DateTimeFormat('en-CA', {
  timeZone: DISPLAY_TIME_ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
})

function toDate(value: string | number | Date | null | undefined): Date | null {
  if (value === null || value === undefined || value === '') return null
  const d = value instanceof Date ? value : new Date(value)
  return Number.isNaN(d.getTime()) ? null : d
}

function parts(fmt: Intl.DateTimeFormat, d: Date): Record<string, string> {
  const out: Record<string, string> = {}
  for (const p of fmt.formatToParts(d)) out[p.type] = p.value
  return out
}

/** `YYYY-MM-DD HH:mm` in Asia/Shanghai; `placeholder` for empty/invalid input. */
export function formatDateTime(value: string | number | Date | null | undefined, placeholder = '-'): string {
  const d = toDate(value)
  if (!d) return placeholder
  const p = parts(dateTimeFormat, d)
  const hour = p.hour === '24' ? '00' : p.hour
  return `${p.year}-${p.month}-${p.day} ${hour}:${p.minute}`
}

/** `YYYY-MM-DD` in Asia/Shanghai. */
export function formatDate(value: string | number | Date | null | undefined, placeholder = '-'): string {
  const d = toDate(value)
  if (!d) return placeholder
  const p = parts(dateFormat, d)
  return `${p.year}-${p.month}-${p.day}`
}
