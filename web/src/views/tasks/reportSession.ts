/**
 * Editing session of one report inside a task form: the edit lock, the 30 s
 * autosave (and Ctrl+S) as unsigned draft revisions, and the unlock on leave.
 * Framework-free apart from `reactive`, so it is unit-tested with fake timers.
 *
 * - `acquire()` POST /reports/{id}/lock → token + expiry; 409 `report_locked`
 *   → `locked_by_other` (details.holder, details.expires_at), read-only.
 * - `save()` PUT /reports/{id}/draft with the token when the text changed;
 *   409 `lock_lost` → `lost` (the server kept the text as a draft revision,
 *   details.revision_id); autosave stops.
 * - The lock is renewed (POST lock again) when less than `renewBeforeMs` is left.
 * - `release()` saves pending changes, then POST unlock with the token.
 */
import { reactive } from 'vue'
import { isApiError } from '@/api/http'
import { lockReport, saveDraft, unlockReport, unlockReportOnUnload, type DraftBody } from '@/api/reports'
import type { PersonRef, Revision } from '@/api/types'

export type LockStatus = 'idle' | 'locking' | 'held' | 'locked_by_other' | 'lost' | 'submitted' | 'released'

export interface ReportSessionState {
  status: LockStatus
  token: number | null
  expiresAt: string | null
  /** Holder and expiry when someone else has the lock. */
  otherHolder: PersonRef | null
  otherExpiresAt: string | null
  lastSavedAt: string | null
  saving: boolean
  /** Draft revision the server kept when the lock was lost. */
  lostRevisionId: number | null
  /** Message of the last failed save (other than lock_lost). */
  saveError: string
}

export interface ReportSessionOptions {
  reportId: number
  /** The current text of the report fields. */
  getDraft: () => DraftBody
  /** Called after each saved draft revision (e.g. to refresh the history). */
  onSaved?: (rev: Revision) => void
  autosaveMs?: number
  renewBeforeMs?: number
  now?: () => number
}

export const AUTOSAVE_MS = 30_000
export const RENEW_BEFORE_MS = 60_000

function holderOf(details: Record<string, unknown>): PersonRef | null {
  const h = details.holder
  if (h && typeof h === 'object') {
    const o = h as { id?: number; full_name?: string; username?: string }
    return { id: o.id ?? 0, full_name: o.full_name || o.username || '' }
  }
  if (typeof h === 'string') return { id: 0, full_name: h }
  return null
}

export function createReportSession(opts: ReportSessionOptions) {
  const autosaveMs = opts.autosaveMs ?? AUTOSAVE_MS
  const renewBeforeMs = opts.renewBeforeMs ?? RENEW_BEFORE_MS
  const now = opts.now ?? (() => Date.now())

  const state = reactive<ReportSessionState>({
    status: 'idle',
    token: null,
    expiresAt: null,
    otherHolder: null,
    otherExpiresAt: null,
    lastSavedAt: null,
    saving: false,
    lostRevisionId: null,
    saveError: '',
  })

  let timer: ReturnType<typeof setInterval> | null = null
  /** JSON of the text last saved (or loaded): "dirty" means the current text differs. */
  let savedJson = JSON.stringify(opts.getDraft())
  let inFlight: Promise<boolean> | null = null

  const isDirty = (): boolean => JSON.stringify(opts.getDraft()) !== savedJson

  function stopTimer(): void {
    if (timer) clearInterval(timer)
    timer = null
  }

  function startTimer(): void {
    stopTimer()
    timer = setInterval(() => void tick(), autosaveMs)
  }

  async function acquire(): Promise<boolean> {
    state.status = 'locking'
    try {
      const lock = await lockReport(opts.reportId)
      state.token = lock.lock_token
      state.expiresAt = lock.expires_at
      state.otherHolder = null
      state.otherExpiresAt = null
      state.lostRevisionId = null
      state.status = 'held'
      startTimer()
      return true
    } catch (e) {
      if (isApiError(e) && e.status === 409) {
        state.status = 'locked_by_other'
        state.otherHolder = holderOf(e.details)
        state.otherExpiresAt = typeof e.details.expires_at === 'string' ? e.details.expires_at : null
      } else {
        state.status = 'idle'
        throw e
      }
      return false
    }
  }

  /** Mark the lock as lost (a 409 `lock_lost` from save or complete). */
  function markLost(revisionId: unknown): void {
    state.status = 'lost'
    state.token = null
    state.lostRevisionId = typeof revisionId === 'number' ? revisionId : Number(revisionId) || null
    stopTimer()
  }

  async function doSave(): Promise<boolean> {
    if (state.status !== 'held' || state.token === null) return false
    const body = opts.getDraft()
    const json = JSON.stringify(body)
    state.saving = true
    try {
      const rev = await saveDraft(opts.reportId, state.token, body)
      savedJson = json
      state.lastSavedAt = rev?.created_at || new Date(now()).toISOString()
      state.saveError = ''
      opts.onSaved?.(rev)
      return true
    } catch (e) {
      if (isApiError(e) && e.status === 409 && e.code === 'lock_lost') {
        markLost(e.details.revision_id)
      } else {
        state.saveError = isApiError(e) ? e.message : String(e)
      }
      return false
    } finally {
      state.saving = false
    }
  }

  /** Save a draft revision if the text changed (`force` saves anyway). Resolves true when saved. */
  async function save(force = false): Promise<boolean> {
    if (inFlight) await inFlight
    if (!force && !isDirty()) return false
    inFlight = doSave()
    try {
      return await inFlight
    } finally {
      inFlight = null
    }
  }

  async function renew(): Promise<void> {
    try {
      const lock = await lockReport(opts.reportId)
      state.token = lock.lock_token
      state.expiresAt = lock.expires_at
    } catch {
      // keep the current token; a later save reports lock_lost if it is really gone
    }
  }

  async function tick(): Promise<void> {
    if (state.status !== 'held') return
    await save()
    if (state.status === 'held' && state.expiresAt) {
      const left = new Date(state.expiresAt).getTime() - now()
      if (left < renewBeforeMs) await renew()
    }
  }

  /** The task was completed: the server consumed the lock. */
  function markSubmitted(): void {
    stopTimer()
    state.status = 'submitted'
  }

  /** Leaving the page: save what changed, then give the lock back. */
  async function release(): Promise<void> {
    stopTimer()
    if (state.status !== 'held' || state.token === null) return
    await save()
    if (state.status !== 'held' || state.token === null) return
    const token = state.token
    state.status = 'released'
    state.token = null
    try {
      await unlockReport(opts.reportId, token)
    } catch {
      // the lock expires on its own
    }
  }

  /** The tab is closing: no time to save; unlock with a keepalive request. */
  function releaseOnUnload(): void {
    if (state.status === 'held' && state.token !== null) unlockReportOnUnload(opts.reportId, state.token)
  }

  /** Forget the loaded text as "saved" (after loading new data). */
  function resetBaseline(): void {
    savedJson = JSON.stringify(opts.getDraft())
  }

  return { state, acquire, save, tick, markLost, markSubmitted, release, releaseOnUnload, isDirty, resetBaseline, stop: stopTimer }
}

export type ReportSession = ReturnType<typeof createReportSession>
