/**
 * Generated task forms: JSON Forms (`@jsonforms/core` + `@jsonforms/vue`) with
 * the Element Plus renderers of this folder. Import this module only from
 * lazily loaded pages (TaskFormView) so the login page stays small.
 */
import type { JsonSchema } from '@jsonforms/core'
import type RealAjv from 'ajv'
import { i18n } from '@/i18n'
import { Ajv } from './ajvShim'
import { defaultMessages, type ErrorObject, type MessageFn } from './validator'

export { elementRenderers, namedRenderers } from './registry'
export type { ErrorObject }

/** Validation messages from vue-i18n (`formErrors.<keyword>`), else the built-in zh-CN text. */
export const i18nMessages: MessageFn = (keyword, params) => {
  const key = `formErrors.${keyword.replace(/\s+/g, '_')}`
  const g = i18n.global as unknown as {
    te: (k: string) => boolean
    t: (k: string, p?: Record<string, unknown>) => string
  }
  if (g.te(key)) {
    const flat: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(params)) flat[k] = Array.isArray(v) ? v.join('、') : v
    return g.t(key, flat)
  }
  return defaultMessages(keyword, params)
}

/**
 * The validator handed to `<JsonForms :ajv>` (CSP-safe, see ajvShim.ts). Typed
 * as Ajv for JSON Forms' props; only `compile` and `validate` are used.
 */
export function createFormsAjv(): RealAjv {
  return new Ajv({ allErrors: true, verbose: true, strict: false }, i18nMessages) as unknown as RealAjv
}

/**
 * A server error path → JSON pointer. Accepts "findings", "/findings",
 * "exams.0.body_part", "exams[0].body_part", "$.exams[0].body_part" and
 * "#/properties/findings"; "" / "$" / "/" is the whole form.
 */
export function toInstancePath(path: string | null | undefined): string {
  let p = (path ?? '').trim()
  if (p.startsWith('#')) {
    p = p.slice(1).replace(/\/properties\//g, '/').replace(/\/items\//g, '/')
  }
  p = p.replace(/^\$\.?/, '')
  p = p.replace(/\[(\d+)\]/g, '.$1')
  const parts = p.split(/[./]/).filter(Boolean)
  return parts.length ? '/' + parts.join('/') : ''
}

/** True when a JSON pointer names a field the schema declares (so a control can show it). */
export function schemaHasPath(schema: JsonSchema, instancePath: string): boolean {
  if (!instancePath) return false
  let cur: JsonSchema | undefined = schema
  for (const seg of instancePath.split('/').filter(Boolean)) {
    if (!cur) return false
    if (/^\d+$/.test(seg) && cur.items && !Array.isArray(cur.items)) {
      cur = cur.items as JsonSchema
    } else {
      cur = cur.properties?.[seg] as JsonSchema | undefined
    }
  }
  return !!cur
}

export interface ServerFieldError {
  path: string
  message: string
}

/**
 * `form_invalid` details.errors → JSON Forms `additionalErrors` (shown under
 * the matching control) plus the messages that belong to no field (shown in
 * an alert above the form).
 */
export function mapServerErrors(
  schema: JsonSchema,
  errors: ServerFieldError[] | unknown,
): { fieldErrors: ErrorObject[]; general: string[] } {
  const fieldErrors: ErrorObject[] = []
  const general: string[] = []
  if (!Array.isArray(errors)) return { fieldErrors, general }
  for (const raw of errors) {
    const e = (raw ?? {}) as Partial<ServerFieldError>
    const message = String(e.message ?? '')
    const instancePath = toInstancePath(e.path)
    if (schemaHasPath(schema, instancePath)) {
      fieldErrors.push({ instancePath, schemaPath: '', keyword: 'server', params: {}, message })
    } else {
      general.push(instancePath ? `${instancePath.slice(1).replace(/\//g, '.')}：${message}` : message)
    }
  }
  return { fieldErrors, general }
}

/** The decision value that sends a task back (BPMN `decision == "reject"`). */
export const REJECT_DECISION = 'reject'

/** The reason field of a review form: `reject_reason`, else the first property named like "*reason*". */
export function rejectReasonField(schema: JsonSchema): string | null {
  const props = Object.keys(schema.properties ?? {})
  if (props.includes('reject_reason')) return 'reject_reason'
  return props.find((k) => /reason|原因/i.test(k)) ?? null
}

/**
 * Client-side guard (the schema says the same with if/then): rejecting needs
 * a non-blank reason. Returns an error for the reason field, or null.
 */
export function rejectReasonError(schema: JsonSchema, data: Record<string, unknown> | null | undefined, message: string): ErrorObject | null {
  if (!data || data.decision !== REJECT_DECISION) return null
  const field = rejectReasonField(schema)
  if (!field) return null
  const value = data[field]
  if (typeof value === 'string' && value.trim()) return null
  return { instancePath: `/${field}`, schemaPath: '', keyword: 'rejectReason', params: {}, message }
}

/** The report fields a draft save sends (PUT /reports/{id}/draft). */
export const REPORT_FIELDS = ['findings', 'impression', 'recommendation', 'positive'] as const
