import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { fakeAdapter } from '../../../tests/unit/helpers'
import { ApiError, CSRF_HEADER, http, setAuthHandlers, setCsrfToken, setErrorNotifier } from '../http'

const originalAdapter = http.defaults.adapter

function headerOf(config: { headers: unknown }, name: string): unknown {
  const h = config.headers as { get?: (n: string) => unknown } & Record<string, unknown>
  return typeof h.get === 'function' ? h.get(name) : h[name]
}

describe('API client', () => {
  const notify = vi.fn()
  const onUnauthorized = vi.fn()
  const onStepRequired = vi.fn()

  beforeEach(() => {
    notify.mockReset()
    onUnauthorized.mockReset()
    onStepRequired.mockReset()
    setErrorNotifier(notify)
    setAuthHandlers({ onUnauthorized, onStepRequired })
    setCsrfToken('tok-123')
  })

  afterEach(() => {
    http.defaults.adapter = originalAdapter
    setCsrfToken(null)
    setAuthHandlers(null)
  })

  it('sends X-CSRF-Token on POST, PUT, PATCH and DELETE', async () => {
    const { adapter, calls } = fakeAdapter(() => ({ status: 200, data: {} }))
    http.defaults.adapter = adapter
    await http.post('/users', { a: 1 })
    await http.put('/users/1/roles', { role_ids: [1] })
    await http.patch('/users/1', { enabled: false })
    await http.delete('/roles/3')
    expect(calls).toHaveLength(4)
    for (const c of calls) expect(headerOf(c, CSRF_HEADER)).toBe('tok-123')
  })

  it('does not send X-CSRF-Token on GET', async () => {
    const { adapter, calls } = fakeAdapter(() => ({ status: 200, data: [] }))
    http.defaults.adapter = adapter
    await http.get('/roles')
    expect(calls).toHaveLength(1)
    expect(headerOf(calls[0], CSRF_HEADER)).toBeFalsy()
  })

  it('fetches an anonymous token from /auth/csrf before the first unsafe request', async () => {
    setCsrfToken(null)
    const { adapter, calls } = fakeAdapter((c) =>
      c.url === '/auth/csrf' ? { status: 200, data: { csrf_token: 'anon-9' } } : { status: 201, data: { id: 1 } },
    )
    http.defaults.adapter = adapter
    await http.post('/registrations', new FormData())
    expect(calls.map((c) => c.url)).toEqual(['/auth/csrf', '/registrations'])
    expect(headerOf(calls[0], CSRF_HEADER)).toBeFalsy()
    expect(headerOf(calls[1], CSRF_HEADER)).toBe('anon-9')
  })

  it('sends credentials (session cookie) with every request', async () => {
    const { adapter, calls } = fakeAdapter(() => ({ status: 200, data: {} }))
    http.defaults.adapter = adapter
    await http.get('/auth/me')
    expect(calls[0].withCredentials).toBe(true)
    expect(calls[0].baseURL).toBe('/api')
  })

  it('turns the error envelope into an ApiError and toasts the Chinese message', async () => {
    const { adapter } = fakeAdapter(() => ({
      status: 409,
      data: { code: 'role_in_use', message: '角色仍有用户使用，不能删除', details: { users: 3 } },
    }))
    http.defaults.adapter = adapter
    const err = await http.delete('/roles/3').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect((err as ApiError).code).toBe('role_in_use')
    expect((err as ApiError).details).toEqual({ users: 3 })
    expect(notify).toHaveBeenCalledWith('角色仍有用户使用，不能删除')
    expect(onUnauthorized).not.toHaveBeenCalled()
  })

  it('calls the 401 handler when the session is gone, without a toast', async () => {
    const { adapter } = fakeAdapter(() => ({ status: 401, data: { code: 'unauthenticated', message: '请先登录' } }))
    http.defaults.adapter = adapter
    const err = (await http.get('/users').catch((e: unknown) => e)) as ApiError
    expect(onUnauthorized).toHaveBeenCalledTimes(1)
    expect(err.handled).toBe(true)
    expect(notify).not.toHaveBeenCalled()
  })

  it('does not treat a wrong password (401 invalid_credentials) or the login call as session expiry', async () => {
    const { adapter } = fakeAdapter(() => ({
      status: 401,
      data: { code: 'invalid_credentials', message: '用户名或密码错误' },
    }))
    http.defaults.adapter = adapter
    await http.post('/auth/password', {}, { silent: true }).catch(() => undefined)
    await http.post('/auth/login', {}, { silent: true }).catch(() => undefined)
    expect(onUnauthorized).not.toHaveBeenCalled()
  })

  it('routes 403 password_change_required / mfa_required to the step handler', async () => {
    const { adapter } = fakeAdapter((c) => ({
      status: 403,
      data: {
        code: c.url === '/a' ? 'password_change_required' : 'mfa_required',
        message: '需要进一步验证',
      },
    }))
    http.defaults.adapter = adapter
    await http.get('/a').catch(() => undefined)
    await http.get('/b').catch(() => undefined)
    expect(onStepRequired.mock.calls.map((c) => c[0])).toEqual(['password_change_required', 'mfa_required'])
    expect(notify).not.toHaveBeenCalled()
  })
})
