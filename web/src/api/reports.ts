import { getCsrfToken, http, CSRF_HEADER } from './http'
import type { Report, Revision } from './types'

export interface ReportLock {
  lock_token: number
  expires_at: string
}

export interface DraftBody {
  findings: string | null
  impression: string | null
  recommendation: string | null
  positive: '阴性' | '阳性' | null
}

/** 409 `report_locked` (details.holder, expires_at) is rendered by the caller. */
export async function lockReport(id: number): Promise<ReportLock> {
  const { data } = await http.post<ReportLock>(`/reports/${id}/lock`, undefined, { silent: true })
  return data
}

export async function unlockReport(id: number, lockToken: number): Promise<void> {
  // Best effort while leaving the page (also after logout): never redirect.
  await http.post(`/reports/${id}/unlock`, { lock_token: lockToken }, { silent: true, skipAuthRedirect: true, skipStepRedirect: true })
}

/**
 * Best-effort unlock while the page is being closed (`pagehide`): a keepalive
 * fetch survives the unload, and unlike sendBeacon it can carry the CSRF header.
 */
export function unlockReportOnUnload(id: number, lockToken: number): void {
  try {
    const token = getCsrfToken()
    void fetch(`/api/reports/${id}/unlock`, {
      method: 'POST',
      keepalive: true,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', ...(token ? { [CSRF_HEADER]: token } : {}) },
      body: JSON.stringify({ lock_token: lockToken }),
    }).catch(() => undefined)
  } catch {
    // nothing more can be done while unloading
  }
}

/** Unsigned autosave; 409 `lock_lost` keeps the text as a draft revision (details.revision_id). */
export async function saveDraft(id: number, lockToken: number, body: DraftBody): Promise<Revision> {
  const { data } = await http.put<Revision>(`/reports/${id}/draft`, { lock_token: lockToken, ...body }, { silent: true })
  return data
}

export async function listRevisions(id: number): Promise<Revision[]> {
  const { data } = await http.get<Revision[]>(`/reports/${id}/revisions`)
  return data
}

export async function printReport(id: number): Promise<Report> {
  const { data } = await http.post<Report>(`/reports/${id}/print`)
  return data
}
