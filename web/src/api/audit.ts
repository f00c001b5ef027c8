import { cleanParams, http } from './http'
import type { AuditEvent, AuditEventType, AuditVerifyResult, Paged } from './types'

export interface AuditFilters {
  username?: string
  event_type?: string
  object_type?: string
  object_id?: string
  outcome?: '' | 'success' | 'failure'
  start?: string
  end?: string
}

export async function listAuditEvents(
  filters: AuditFilters & { page: number; page_size: number },
): Promise<Paged<AuditEvent>> {
  const { data } = await http.get<Paged<AuditEvent>>('/audit/events', { params: cleanParams({ ...filters }) })
  return data
}

export async function listAuditEventTypes(): Promise<AuditEventType[]> {
  const { data } = await http.get<AuditEventType[]>('/audit/event-types')
  return data
}

export async function verifyAuditLog(): Promise<AuditVerifyResult> {
  const { data } = await http.get<AuditVerifyResult>('/audit/verify')
  return data
}

/** URL for the xlsx export with the same filters as the list (GET, no CSRF). */
export function auditExportUrl(filters: AuditFilters): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(cleanParams({ ...filters }))) params.set(k, String(v))
  const qs = params.toString()
  return '/api/audit/export' + (qs ? `?${qs}` : '')
}
