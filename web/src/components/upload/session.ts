/**
 * One manual upload onto an exam (REQ: REG-16), as a reactive state the dialog shows:
 * reading (folders walked, zips listed) → checking (each file sniffed for "DICM" and its header read; non-DICOM
 * skipped with a line) → confirm (the images' PatientID differs from the exam's patient) → sending (STOW-RS batches
 * with progress, retry, cancel; one result per file) → linking (the stored studies linked to the exam on the server,
 * engine/imaging/upload_link.py) → done. A cancel stops sending; what was stored already is still linked, so that
 * nothing the archive holds is left without its exam.
 */
import { reactive } from 'vue'
import { parseHeader, HEAD_BYTES, type DicomHeader } from './dicomHeader'
import { expand, type NamedFile, type SourceItem } from './sources'
import {
  Cancelled,
  multipartBody,
  newBoundary,
  planBatches,
  sendWithRetry,
  StowError,
  type RetryOptions,
  type StowOutcomes,
} from './stow'
import type { ExamStudy } from './api'

export type RowStatus = 'waiting' | 'sending' | 'stored' | 'duplicate' | 'warning' | 'refused' | 'skipped' | 'cancelled' | 'error'
export type Phase = 'idle' | 'reading' | 'checking' | 'confirm' | 'sending' | 'linking' | 'done' | 'cancelled'

const DICOMDIR_CLASS = '1.2.840.10008.1.3.10'
const DUPLICATE_TEXT = '相同实例已存储' // i18n-exempt: not shown, compared with the server's reason for an instance it holds already (api/dicomweb/stow.py)
const FINAL_FOR_ALL = new Set([401, 403]) // the session or the permission is gone: nothing else will go through

export interface UploadRow {
  id: number
  name: string
  size: number
  status: RowStatus
  /** A client-side reason: an i18n key under upload.reason (e.g. not_dicom). */
  reasonKey: string
  /** The server's own (Chinese) reason, shown as it is. */
  reason: string
  header: DicomHeader | null
}

export interface UploadState {
  phase: Phase
  rows: UploadRow[]
  checked: number
  totalBytes: number
  sentBytes: number
  batch: number
  batches: number
  retry: { attempt: number; message: string } | null
  mismatchedPatients: string[]
  linked: ExamStudy[]
  linkError: string
  fatal: string
}

export interface UploadDeps {
  examId: number
  /** The exam's patient number (PatientID the images should carry); '' skips the check. */
  patientNo: string
  csrfToken: () => Promise<string | null>
  refreshCsrf: () => Promise<unknown>
  link: (examId: number, uids: string[]) => Promise<ExamStudy[]>
  /** Asked when the images' PatientID differs: true goes on. */
  confirmMismatch: (patientIds: string[]) => Promise<boolean>
  retry?: Pick<RetryOptions, 'delays' | 'sleep' | 'send'>
  maxFiles?: number
  maxBytes?: number
}

export function emptyState(): UploadState {
  return {
    phase: 'idle',
    rows: [],
    checked: 0,
    totalBytes: 0,
    sentBytes: 0,
    batch: 0,
    batches: 0,
    retry: null,
    mismatchedPatients: [],
    linked: [],
    linkError: '',
    fatal: '',
  }
}

export function counts(rows: UploadRow[]): Record<'stored' | 'refused' | 'skipped' | 'other', number> {
  const c = { stored: 0, refused: 0, skipped: 0, other: 0 }
  for (const r of rows) {
    if (r.status === 'stored' || r.status === 'duplicate' || r.status === 'warning') c.stored++
    else if (r.status === 'refused' || r.status === 'error') c.refused++
    else if (r.status === 'skipped') c.skipped++
    else c.other++
  }
  return c
}

/** Percent of the DICOM bytes sent (0–100). */
export function percent(s: UploadState): number {
  if (s.totalBytes <= 0) return s.phase === 'done' ? 100 : 0
  return Math.min(100, Math.round((s.sentBytes / s.totalBytes) * 100))
}

/** Apply one batch's Store Instances Response to its rows (by SOP Instance UID; unnamed parts in order). */
export function applyOutcomes(rows: UploadRow[], outcomes: StowOutcomes): void {
  const bySop = new Map(outcomes.instances.map((o) => [o.sopInstanceUid, o]))
  const other = [...outcomes.other]
  for (const row of rows) {
    const o = row.header?.sopInstanceUid ? bySop.get(row.header.sopInstanceUid) : undefined
    if (!o) {
      row.status = 'error'
      row.reason = other.shift() ?? ''
      row.reasonKey = row.reason ? '' : 'no_answer'
      continue
    }
    row.reason = o.reason
    if (!o.stored) row.status = 'refused'
    else if (o.status !== null) row.status = 'warning'
    else row.status = o.reason === DUPLICATE_TEXT ? 'duplicate' : 'stored'
    if (o.stored && o.studyInstanceUid && row.header) row.header.studyInstanceUid = o.studyInstanceUid
    if (!o.stored && !row.reason) row.reasonKey = 'refused'
  }
}

export class UploadSession {
  readonly state: UploadState = reactive(emptyState())
  private controller = new AbortController()
  private items: SourceItem[] = []

  constructor(private readonly deps: UploadDeps) {}

  cancel(): void {
    this.controller.abort()
  }

  get cancelled(): boolean {
    return this.controller.signal.aborted
  }

  async run(files: NamedFile[]): Promise<UploadState> {
    const s = this.state
    try {
      s.phase = 'reading'
      const { items, problems } = await expand(files)
      // folder order as the browser gives it is arbitrary: by path, as a file manager shows them
      items.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }))
      this.items = items
      let id = 0
      for (const it of items) {
        s.rows.push({ id: id++, name: it.name, size: it.size, status: 'waiting', reasonKey: '', reason: '', header: null })
      }
      for (const p of problems) {
        s.rows.push({ id: id++, name: p.name, size: 0, status: 'skipped', reasonKey: p.reason, reason: '', header: null })
      }
      s.phase = 'checking'
      await this.check()
      if (this.cancelled) return this.finishCancelled()
      const dicom = s.rows.filter((r) => r.status === 'waiting')
      if (!(await this.confirmPatients(dicom))) return this.finishCancelled()
      s.phase = 'sending'
      await this.send(dicom)
      if (this.cancelled) return await this.finishCancelled()
      await this.link()
      s.phase = 'done'
    } catch (e) {
      if (e instanceof Cancelled || this.cancelled) return this.finishCancelled()
      s.fatal = e instanceof Error ? e.message : String(e)
      s.phase = 'done'
    }
    return s
  }

  /** Sniff every item ("DICM" at byte 128) and read its header; non-DICOM and DICOMDIR are skipped. */
  private async check(): Promise<void> {
    const s = this.state
    for (let i = 0; i < this.items.length; i++) {
      if (this.cancelled) return
      const row = s.rows[i]!
      let head: Uint8Array
      try {
        head = await this.items[i]!.readHead(HEAD_BYTES)
      } catch {
        row.status = 'skipped'
        row.reasonKey = 'unreadable'
        s.checked++
        continue
      }
      const header = parseHeader(head)
      s.checked++
      if (!header) {
        row.status = 'skipped'
        row.reasonKey = 'not_dicom'
      } else if (header.sopClassUid === DICOMDIR_CLASS) {
        row.status = 'skipped'
        row.reasonKey = 'dicomdir'
      } else {
        row.header = header
        s.totalBytes += row.size
      }
    }
  }

  private async confirmPatients(rows: UploadRow[]): Promise<boolean> {
    const expected = this.deps.patientNo.trim()
    if (!expected || !rows.length) return true
    const ids = [...new Set(rows.map((r) => r.header?.patientId ?? '').filter((p) => p && p !== expected))]
    if (!ids.length) return true
    this.state.mismatchedPatients = ids
    this.state.phase = 'confirm'
    return this.deps.confirmMismatch(ids)
  }

  private async send(rows: UploadRow[]): Promise<void> {
    const s = this.state
    const batches = planBatches(rows, this.deps.maxFiles, this.deps.maxBytes)
    s.batches = batches.length
    let done = 0
    for (const batch of batches) {
      if (this.cancelled) return
      s.batch++
      const bytes = batch.reduce((n, r) => n + r.size, 0)
      let parts: Uint8Array[]
      try {
        parts = await Promise.all(batch.map((r) => this.items[r.id]!.read()))
      } catch {
        for (const r of batch) Object.assign(r, { status: 'error', reasonKey: 'unreadable' })
        done += bytes
        s.sentBytes = done
        continue
      }
      const boundary = newBoundary()
      const body = multipartBody(parts, boundary)
      for (const r of batch) r.status = 'sending'
      try {
        const reply = await sendWithRetry(body, boundary, {
          ...this.deps.retry,
          csrfToken: this.deps.csrfToken,
          refreshCsrf: this.deps.refreshCsrf,
          signal: this.controller.signal,
          onProgress: (loaded, total) => {
            s.sentBytes = done + Math.round((bytes * loaded) / Math.max(total, 1))
          },
          onRetry: (attempt, err) => {
            s.retry = { attempt, message: err.message }
          },
        })
        s.retry = null
        applyOutcomes(batch, reply.outcomes)
      } catch (e) {
        s.retry = null
        if (e instanceof Cancelled) {
          for (const r of batch) r.status = 'cancelled'
          return
        }
        const err = e instanceof StowError ? e : new StowError(0, 'error', String(e))
        for (const r of batch) Object.assign(r, { status: 'error', reason: err.message, reasonKey: '' })
        if (FINAL_FOR_ALL.has(err.status)) {
          s.fatal = err.message
          for (const r of rows) if (r.status === 'waiting') Object.assign(r, { status: 'cancelled' })
          return
        }
      }
      done += bytes
      s.sentBytes = done
    }
  }

  /** Link the studies that were stored (now or before) to the exam. */
  private async link(): Promise<void> {
    const s = this.state
    const stored = s.rows.filter((r) => ['stored', 'duplicate', 'warning'].includes(r.status))
    const uids = [...new Set(stored.map((r) => r.header?.studyInstanceUid ?? '').filter(Boolean))]
    if (!uids.length) return
    s.phase = 'linking'
    try {
      s.linked = await this.deps.link(this.deps.examId, uids)
    } catch (e) {
      s.linkError = e instanceof Error ? e.message : String(e)
    }
  }

  private async finishCancelled(): Promise<UploadState> {
    const s = this.state
    for (const r of s.rows) if (r.status === 'waiting' || r.status === 'sending') r.status = 'cancelled'
    await this.link()
    s.phase = 'cancelled'
    return s
  }
}
