import { ElMessage } from 'element-plus'
import { isApiError } from '@/api/http'

/** Show an API error's Chinese message unless a global handler already did. */
export function showError(e: unknown, fallback = '操作失败，请稍后重试'): void {
  if (isApiError(e)) {
    if (!e.handled) ElMessage.error({ message: e.message, grouping: true })
    return
  }
  ElMessage.error({ message: fallback, grouping: true })
}

/** `details.fields` of a `validation_error` → `{ field: "msg; msg" }`. */
export function fieldErrors(e: unknown): Record<string, string> {
  if (!isApiError(e)) return {}
  const fields = e.details?.fields
  if (!fields || typeof fields !== 'object') return {}
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(fields as Record<string, unknown>)) {
    out[k] = Array.isArray(v) ? v.join('；') : String(v)
  }
  return out
}

/** `details.rules` of a `password_policy` error. */
export function policyRules(e: unknown): string[] {
  if (!isApiError(e)) return []
  const rules = e.details?.rules
  return Array.isArray(rules) ? rules.map(String) : []
}
