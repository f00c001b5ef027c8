import axios, { AxiosError, type AxiosInstance, type InternalAxiosRequestConfig } from 'axios'
import { ElMessage } from 'element-plus'
import type { ApiErrorBody } from './types'

declare module 'axios' {
  interface AxiosRequestConfig {
    /** Do not toast the error message; the caller renders it. */
    silent?: boolean
    /** Do not run the global 401 → /login redirect for this request. */
    skipAuthRedirect?: boolean
    /** Do not run the global 403 step redirect (MFA / password); the caller shows the message. */
    skipStepRedirect?: boolean
    /** Internal: request was already retried after a CSRF failure. */
    _csrfRetried?: boolean
  }
}

/** Error thrown by every API call: status + backend error envelope. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly details: Record<string, unknown>
  /** True when the user was already told (toast) or redirected by the client. */
  handled = false

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError
}

const UNSAFE_METHODS = new Set(['post', 'put', 'patch', 'delete'])
export const CSRF_HEADER = 'X-CSRF-Token'

/** 401 codes that mean "the form input was wrong", not "you are logged out". */
const FORM_LEVEL_401_CODES = new Set(['invalid_credentials', 'invalid_mfa_code'])
/** Paths whose 401 never means "session expired". */
const NO_REDIRECT_PATHS = ['/auth/login', '/auth/csrf', '/registrations']

export const STEP_CODES = ['password_change_required', 'mfa_required'] as const
export type StepCode = (typeof STEP_CODES)[number]

export interface AuthHandlers {
  onUnauthorized: (error: ApiError) => void
  onStepRequired: (code: StepCode, error: ApiError) => void
}

let csrfToken: string | null = null
let handlers: AuthHandlers | null = null
let notify: (message: string) => void = (message) => {
  ElMessage.error({ message, grouping: true })
}

export function setCsrfToken(token: string | null | undefined): void {
  csrfToken = token || null
}

export function getCsrfToken(): string | null {
  return csrfToken
}

export function setAuthHandlers(h: AuthHandlers | null): void {
  handlers = h
}

export function setErrorNotifier(fn: (message: string) => void): void {
  notify = fn
}

export const http: AxiosInstance = axios.create({
  baseURL: '/api',
  withCredentials: true,
  timeout: 60_000,
  headers: { Accept: 'application/json' },
  xsrfCookieName: undefined,
})

let csrfInFlight: Promise<string | null> | null = null

/** Fetch an anonymous/session CSRF token (GET /api/auth/csrf). */
export async function fetchCsrfToken(): Promise<string | null> {
  if (!csrfInFlight) {
    csrfInFlight = http
      .get<{ csrf_token: string }>('/auth/csrf', { silent: true, skipAuthRedirect: true })
      .then((r) => {
        setCsrfToken(r.data?.csrf_token)
        return csrfToken
      })
      .finally(() => {
        csrfInFlight = null
      })
  }
  return csrfInFlight
}

export function isUnsafeMethod(method: string | undefined): boolean {
  return UNSAFE_METHODS.has((method || 'get').toLowerCase())
}

http.interceptors.request.use(async (config: InternalAxiosRequestConfig) => {
  if (isUnsafeMethod(config.method)) {
    if (!csrfToken) {
      try {
        await fetchCsrfToken()
      } catch {
        // Let the request go out; the server will answer with a clear error.
      }
    }
    if (csrfToken) config.headers.set(CSRF_HEADER, csrfToken)
  } else {
    config.headers.delete(CSRF_HEADER)
  }
  return config
})

function toApiError(error: AxiosError): ApiError {
  const res = error.response
  if (!res) {
    return new ApiError(0, 'network_error', '网络错误，请检查网络连接后重试')
  }
  const body = res.data as Partial<ApiErrorBody> | undefined
  if (body && typeof body === 'object' && typeof body.code === 'string') {
    return new ApiError(
      res.status,
      body.code,
      typeof body.message === 'string' && body.message ? body.message : `请求失败（HTTP ${res.status}）`,
      (body.details as Record<string, unknown>) || {},
    )
  }
  if (res.status === 413) return new ApiError(413, 'too_large', '上传内容过大')
  if (res.status === 401) return new ApiError(401, 'unauthenticated', '登录已失效，请重新登录')
  return new ApiError(res.status, `http_${res.status}`, `请求失败（HTTP ${res.status}）`)
}

function isNoRedirectPath(url: string | undefined): boolean {
  const u = url || ''
  return NO_REDIRECT_PATHS.some((p) => u === p || u.startsWith(p + '/') || u.startsWith(p + '?'))
}

http.interceptors.response.use(
  (response) => response,
  async (error: AxiosError) => {
    if (axios.isCancel(error)) throw error
    const config = error.config
    const apiError = toApiError(error)

    // The CSRF token may have rotated (e.g. session renewed): refresh once and retry.
    if (
      config &&
      !config._csrfRetried &&
      apiError.status === 403 &&
      /csrf/i.test(apiError.code) &&
      isUnsafeMethod(config.method)
    ) {
      config._csrfRetried = true
      setCsrfToken(null)
      await fetchCsrfToken().catch(() => null)
      return http.request(config)
    }

    if (
      apiError.status === 401 &&
      !config?.skipAuthRedirect &&
      !FORM_LEVEL_401_CODES.has(apiError.code) &&
      !isNoRedirectPath(config?.url)
    ) {
      apiError.handled = true
      setCsrfToken(null)
      handlers?.onUnauthorized(apiError)
      throw apiError
    }

    if (
      apiError.status === 403 &&
      !config?.skipStepRedirect &&
      (STEP_CODES as readonly string[]).includes(apiError.code)
    ) {
      apiError.handled = true
      handlers?.onStepRequired(apiError.code as StepCode, apiError)
      throw apiError
    }

    if (!config?.silent) {
      notify(apiError.message)
      apiError.handled = true
    }
    throw apiError
  },
)

/** Build multipart form data, skipping undefined/null/empty-string values. */
export function toFormData(fields: Record<string, string | number | Blob | File | null | undefined>): FormData {
  const fd = new FormData()
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null || value === '') continue
    if (value instanceof Blob) fd.append(key, value)
    else fd.append(key, String(value))
  }
  return fd
}

/** Drop empty filter values so they are not sent as `?q=`. */
export function cleanParams<T extends Record<string, unknown>>(params: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue
    ;(out as Record<string, unknown>)[k] = v
  }
  return out
}
