/**
 * Manual upload (REQ: REG-16): STOW-RS requests of the uploader (api/dicomweb/stow.py) — files grouped into
 * requests of at most MAX_FILES files and MAX_BYTES bytes (well under the server's TELERAD_STOW_MAX_PARTS and
 * TELERAD_STOW_MAX_BYTES, and small enough that a retry or a cancel loses little), the multipart/related body,
 * sending with upload progress, retry and cancel, and reading the Store Instances Response per file.
 */
import { i18n } from '@/i18n'

export const MAX_FILES = 50
export const MAX_BYTES = 64 * 1024 * 1024
export const STOW_URL = '/dicomweb/studies'
export const RETRY_DELAYS_MS = [1000, 3000, 9000] // network errors, 408, 429, 5xx: three more tries
const RETRYABLE = new Set([0, 408, 429, 500, 502, 503, 504])

/** Consecutive groups of at most `maxFiles` items and `maxBytes` bytes (a larger item goes alone). */
export function planBatches<T extends { size: number }>(items: T[], maxFiles = MAX_FILES, maxBytes = MAX_BYTES): T[][] {
  const out: T[][] = []
  let cur: T[] = []
  let bytes = 0
  for (const it of items) {
    if (cur.length && (cur.length >= maxFiles || bytes + it.size > maxBytes)) {
      out.push(cur)
      cur = []
      bytes = 0
    }
    cur.push(it)
    bytes += it.size
  }
  if (cur.length) out.push(cur)
  return out
}

export function newBoundary(): string {
  const rnd = new Uint8Array(16)
  crypto.getRandomValues(rnd)
  return `telerad-${Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('')}`
}

/** A multipart/related body of application/dicom parts (PS3.18 §8.6.1.2). */
export function multipartBody(parts: Uint8Array[], boundary: string): Blob {
  const chunks: BlobPart[] = []
  for (const p of parts) {
    chunks.push(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, p as Uint8Array<ArrayBuffer>, '\r\n')
  }
  chunks.push(`--${boundary}--\r\n`)
  return new Blob(chunks)
}

export function contentType(boundary: string): string {
  return `multipart/related; type="application/dicom"; boundary=${boundary}`
}

// --- the Store Instances Response (DICOM JSON) ------------------------------------------------------------------
export interface InstanceOutcome {
  sopInstanceUid: string
  studyInstanceUid: string
  stored: boolean
  /** The server's Chinese reason (TextValue) — a refusal's, a warning's, or "相同实例已存储". */
  reason: string
  /** FailureReason or WarningReason (DIMSE status), if any. */
  status: number | null
}

export interface StowOutcomes {
  instances: InstanceOutcome[]
  /** Parts the server could not read as DICOM at all (no SOP to name): their reasons, in order. */
  other: string[]
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[] }>

function first(ds: DicomJson, tag: string): unknown {
  return ds[tag]?.Value?.[0]
}

function str(ds: DicomJson, tag: string): string {
  const v = first(ds, tag)
  return typeof v === 'string' ? v : ''
}

function num(ds: DicomJson, tag: string): number | null {
  const v = first(ds, tag)
  return typeof v === 'number' ? v : null
}

function seq(ds: DicomJson, tag: string): DicomJson[] {
  return (ds[tag]?.Value ?? []) as DicomJson[]
}

function studyOf(url: string): string {
  const m = /\/studies\/([0-9.]+)/.exec(url)
  return m ? m[1]! : ''
}

export function parseStowResponse(body: unknown): StowOutcomes {
  const ds = (body && typeof body === 'object' ? body : {}) as DicomJson
  const instances: InstanceOutcome[] = []
  for (const item of seq(ds, '00081199')) {
    instances.push({
      sopInstanceUid: str(item, '00081155'),
      studyInstanceUid: studyOf(str(item, '00081190')),
      stored: true,
      reason: str(item, '0040A160'),
      status: num(item, '00081196'),
    })
  }
  for (const item of seq(ds, '00081198')) {
    instances.push({
      sopInstanceUid: str(item, '00081155'),
      studyInstanceUid: '',
      stored: false,
      reason: str(item, '0040A160'),
      status: num(item, '00081197'),
    })
  }
  const other = seq(ds, '0008119A').map((item) => str(item, '0040A160'))
  return { instances, other }
}

// --- sending ----------------------------------------------------------------------------------------------------
export class StowError extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.name = 'StowError'
    this.status = status
    this.code = code
  }
  get retryable(): boolean {
    return RETRYABLE.has(this.status)
  }
}

export class Cancelled extends Error {
  constructor() {
    super('cancelled')
    this.name = 'Cancelled'
  }
}

export interface SendOptions {
  csrfToken: () => Promise<string | null>
  onProgress?: (loaded: number, total: number) => void
  signal?: AbortSignal
  url?: string
}

export interface StowReply {
  status: number
  outcomes: StowOutcomes
}

function errorOf(xhr: XMLHttpRequest): StowError {
  let body: { code?: unknown; message?: unknown } = {}
  try {
    body = JSON.parse(xhr.responseText || '{}') as typeof body
  } catch {
    body = {}
  }
  const code = typeof body.code === 'string' ? body.code : `http_${xhr.status}`
  const message =
    typeof body.message === 'string' && body.message
      ? body.message
      : xhr.status === 413
        ? i18n.global.t('upload.errors.tooLarge')
        : xhr.status === 401
          ? i18n.global.t('errors.sessionExpired')
          : i18n.global.t('upload.errors.failed', { status: xhr.status })
  return new StowError(xhr.status, code, message)
}

/** One STOW-RS request (XMLHttpRequest: fetch reports no upload progress). 200/202/409 answer per instance. */
export async function sendOnce(body: Blob, boundary: string, opts: SendOptions): Promise<StowReply> {
  if (opts.signal?.aborted) throw new Cancelled()
  const token = await opts.csrfToken()
  return new Promise<StowReply>((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', opts.url ?? STOW_URL)
    xhr.withCredentials = true
    xhr.setRequestHeader('Content-Type', contentType(boundary))
    xhr.setRequestHeader('Accept', 'application/dicom+json')
    if (token) xhr.setRequestHeader('X-CSRF-Token', token)
    const onAbort = (): void => xhr.abort()
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    xhr.upload.onprogress = (e) => opts.onProgress?.(e.loaded, e.lengthComputable ? e.total : body.size)
    xhr.onerror = () => reject(new StowError(0, 'network_error', i18n.global.t('upload.errors.network')))
    xhr.ontimeout = () => reject(new StowError(0, 'network_error', i18n.global.t('upload.errors.timeout')))
    xhr.onabort = () => reject(new Cancelled())
    xhr.onload = () => {
      opts.signal?.removeEventListener('abort', onAbort)
      if (xhr.status === 200 || xhr.status === 202 || xhr.status === 409) {
        let parsed: unknown = {}
        try {
          parsed = JSON.parse(xhr.responseText || '{}')
        } catch {
          parsed = {}
        }
        resolve({ status: xhr.status, outcomes: parseStowResponse(parsed) })
      } else {
        reject(errorOf(xhr))
      }
    }
    xhr.send(body)
  })
}

export interface RetryOptions extends SendOptions {
  delays?: number[]
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  /** A failed try is about to be repeated (for the progress line). */
  onRetry?: (attempt: number, error: StowError) => void
  /** A CSRF refusal: fetch a fresh token before the one repeat it gets. */
  refreshCsrf?: () => Promise<unknown>
  send?: typeof sendOnce
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Cancelled())
    const t = setTimeout(resolve, ms)
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t)
        reject(new Cancelled())
      },
      { once: true },
    )
  })
}

/**
 * One batch with the retry policy: a network error, 408, 429 or 5xx is tried again after 1 s, 3 s and 9 s (STOW-RS
 * is idempotent here: an instance stored twice is answered "相同实例已存储"); a CSRF refusal once with a fresh token;
 * anything else (401, 403, 413, 415, 400) is final. A cancel stops at once.
 */
export async function sendWithRetry(body: Blob, boundary: string, opts: RetryOptions): Promise<StowReply> {
  const delays = opts.delays ?? RETRY_DELAYS_MS
  const wait = opts.sleep ?? sleep
  const send = opts.send ?? sendOnce
  let csrfRetried = false
  for (let attempt = 0; ; attempt++) {
    try {
      return await send(body, boundary, opts)
    } catch (e) {
      if (!(e instanceof StowError)) throw e
      if (e.status === 403 && e.code === 'csrf_failed' && !csrfRetried && opts.refreshCsrf) {
        csrfRetried = true
        await opts.refreshCsrf()
        attempt--
        continue
      }
      if (!e.retryable || attempt >= delays.length) throw e
      opts.onRetry?.(attempt + 1, e)
      await wait(delays[attempt]!, opts.signal)
    }
  }
}
