/**
 * Labels of the case history (申请详情 › 流程记录): the API sends codes — the event, the BPMN task id, detail keys
 * and values (api/cases/presenters.py) — and this module names them through vue-i18n (caseHistory.* in the
 * locale files). A code without a label falls back to the server's event name, or to the code itself.
 */
import type { CaseHistoryEntry } from '@/api/types'
import { codeLabel as label, type Translator } from './codeLabels'
import { formatDateTime } from './datetime'

export type { Translator }

/** Detail keys that identify something for the system only (a 临床资料补充 query's id). */
const HIDDEN_KEYS = new Set(['query'])
/** The order details read in (the database may return a JSON object's keys sorted); other keys follow. */
const ORDER = ['question', 'answer', 'unavailable', 'reason', 'due', 'due_at', 'details_exams', 'emergency', 'back_to',
  'to', 'version', 'from_version', 'to_version', 'status']

function rank(key: string): number {
  const i = ORDER.indexOf(key)
  return i < 0 ? ORDER.length : i
}

export function historyEventName(tr: Translator, entry: Pick<CaseHistoryEntry, 'event' | 'event_name'>): string {
  // A requesting hospital's history names UX R2's statuses (`status_<code>`, engine/cases/public_history.py).
  if (entry.event.startsWith('status_')) return label(tr, `examStatus.${entry.event.slice(7)}`, entry.event_name)
  return label(tr, `caseHistory.events.${entry.event}`, entry.event_name || entry.event)
}

/** A BPMN element id (draft_report, sla_timer, answer_query …) as the task's name. */
export function historyTaskName(tr: Translator, task: string | null | undefined): string {
  if (!task) return ''
  return label(tr, `caseHistory.tasks.${task}`, task)
}

const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/

/** An ISO 8601 duration (a query's 答复时限, PT24H) in words; anything else as given. */
export function durationText(tr: Translator, value: string): string {
  const m = DURATION.exec(value)
  if (!m || value === 'P' || value === 'PT') return value
  const units = ['days', 'hours', 'minutes', 'seconds'] as const
  return units
    .map((unit, i) => (m[i + 1] ? tr.t(`caseHistory.units.${unit}`, { n: Number(m[i + 1]) }) : ''))
    .filter(Boolean)
    .join('')
}

function valueText(tr: Translator, key: string, value: unknown): string {
  if (Array.isArray(value)) return value.map((v) => valueText(tr, key, v)).join(tr.t('caseHistory.listSeparator'))
  if (typeof value === 'string') {
    if (key === 'due_at') return formatDateTime(value)
    if (key === 'due') return durationText(tr, value)
    if (key === 'back_to') return historyTaskName(tr, value)
    if (key === 'status') return label(tr, `caseHistory.statuses.${value}`, value)
    return value
  }
  if (value !== null && typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

/**
 * The details of one entry as one line: "label：value；…" (caseHistory.pair and .separator). Empty values and false flags are left out; a true flag
 * (急诊, 无法提供) shows as its label alone.
 */
export function historyDetailsText(tr: Translator, details: unknown): string {
  if (details === null || details === undefined || details === '') return ''
  if (typeof details !== 'object' || Array.isArray(details)) return valueText(tr, '', details)
  return Object.entries(details as Record<string, unknown>)
    .filter(([k, v]) => !HIDDEN_KEYS.has(k) && v !== null && v !== undefined && v !== '' && v !== false)
    .filter(([, v]) => !(Array.isArray(v) && v.length === 0))
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([k, v]) => {
      const name = label(tr, `caseHistory.details.${k}`, k)
      return v === true ? name : tr.t('caseHistory.pair', { label: name, value: valueText(tr, k, v) })
    })
    .join(tr.t('caseHistory.separator'))
}
