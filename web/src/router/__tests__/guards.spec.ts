import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import * as authApi from '@/api/auth'
import { ApiError } from '@/api/http'
import type { Me } from '@/api/types'
import { useAuthStore } from '@/stores/auth'
import { routes } from '../routes'
import { resolveNavigation } from '../guards'

vi.mock('@/api/auth', () => ({ fetchMe: vi.fn(), logout: vi.fn() }))
// '/' asks for the landing page setting (issue 14): none here; src/router/__tests__/landing.spec.ts covers it.
vi.mock('@/api/settings', () => ({ getMySettings: vi.fn().mockResolvedValue([]), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))

function me(menus: string[], state: Me['state'] = 'active'): Me {
  return {
    id: 1,
    username: 'admin',
    full_name: '管理员',
    institution: { id: 1, code: 'C1', name: '中心医院', kind: 'central' },
    department: null,
    roles: [{ code: 'sys_admin', name: '系统管理员' }],
    permissions: [],
    menus,
    state,
    csrf_token: 't',
    mfa_enrolled: true,
    last_login_at: null,
    last_login_ip: null,
    failed_logins_since_last: 0,
    password_expires_at: null,
  }
}

const router = createRouter({ history: createMemoryHistory(), routes })

describe('route guard', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    vi.mocked(authApi.fetchMe).mockReset()
  })

  it('shows 403 for a route whose menu code the user lacks', async () => {
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.home', 'menu.profile']))
    const result = await resolveNavigation(router.resolve('/admin/audit'), useAuthStore())
    expect(result).toMatchObject({ name: 'forbidden', query: { from: '/admin/audit' } })
  })

  it('checks the permission of /cases/new as well as its menu', async () => {
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.cases']))
    expect(await resolveNavigation(router.resolve('/cases/new'), useAuthStore())).toMatchObject({ name: 'forbidden' })
    setActivePinia(createPinia())
    vi.mocked(authApi.fetchMe).mockResolvedValue({ ...me(['menu.cases']), permissions: ['case.create'] })
    expect(await resolveNavigation(router.resolve('/cases/new'), useAuthStore())).toBe(true)
  })

  it('opens a task form with either 我的任务 or 抢单池', async () => {
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.pool']))
    expect(await resolveNavigation(router.resolve('/tasks/5'), useAuthStore())).toBe(true)
    setActivePinia(createPinia())
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.home']))
    expect(await resolveNavigation(router.resolve('/tasks/5'), useAuthStore())).toMatchObject({ name: 'forbidden' })
  })

  it('lets a user with the menu through', async () => {
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.home', 'menu.audit']))
    expect(await resolveNavigation(router.resolve('/admin/audit'), useAuthStore())).toBe(true)
  })

  it('sends anonymous users to /login with next', async () => {
    vi.mocked(authApi.fetchMe).mockRejectedValue(new ApiError(401, 'unauthenticated', '请先登录'))
    const result = await resolveNavigation(router.resolve('/admin/users'), useAuthStore())
    expect(result).toEqual({ path: '/login', query: { next: '/admin/users' } })
  })

  it('sends a half-logged-in user to the MFA step', async () => {
    vi.mocked(authApi.fetchMe).mockRejectedValue(new ApiError(403, 'mfa_required', '请完成双因素认证'))
    const result = await resolveNavigation(router.resolve('/home'), useAuthStore())
    expect(result).toEqual({ path: '/login/mfa', query: { next: '/home' } })
  })

  it('lets public pages through without a session', async () => {
    vi.mocked(authApi.fetchMe).mockRejectedValue(new ApiError(401, 'unauthenticated', '请先登录'))
    expect(await resolveNavigation(router.resolve('/register'), useAuthStore())).toBe(true)
  })

  it("sends '/' to the first menu the user has", async () => {
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.users', 'menu.audit']))
    expect(await resolveNavigation(router.resolve('/'), useAuthStore())).toBe('/admin/users')
  })
})
