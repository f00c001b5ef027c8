/**
 * Naming codes the API sends (event, task, kind, severity …) through vue-i18n, with the server's own name or the
 * code as the fallback for a code the locale files do not know yet.
 */
import type { NotificationItem } from '@/api/notifications'

/** The two functions of vue-i18n's composer these helpers need (useI18n's t and te). */
export interface Translator {
  t: (key: string, named?: Record<string, unknown>) => string
  te: (key: string) => boolean
}

export function codeLabel(tr: Translator, key: string, fallback: string): string {
  return tr.te(key) ? tr.t(key) : fallback
}

/** A notification's kind (engine/notifications/kinds.py), e.g. overdue → 超时提醒. */
export function notificationKindName(tr: Translator, item: Pick<NotificationItem, 'kind' | 'kind_name'>): string {
  return codeLabel(tr, `notifications.kinds.${item.kind}`, item.kind_name || item.kind)
}

export function notificationSeverityName(
  tr: Translator,
  item: Pick<NotificationItem, 'severity' | 'severity_name'>,
): string {
  return codeLabel(tr, `notifications.severities.${item.severity}`, item.severity_name || item.severity)
}
