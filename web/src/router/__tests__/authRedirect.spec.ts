import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import { defineComponent } from 'vue'
import { getCsrfToken, setCsrfToken } from '@/api/http'
import type { Me } from '@/api/types'
import { useAuthStore } from '@/stores/auth'
import { handleStepRequired, handleUnauthorized, loginLocation } from '../authRedirect'

vi.mock('@/api/auth', () => ({
  fetchMe: vi.fn(),
  logout: vi.fn(),
}))

const Dummy = defineComponent({ render: () => null })

function makeRouter(): Router {
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/login', component: Dummy },
      { path: '/login/password', component: Dummy },
      { path: '/login/mfa', component: Dummy },
      { path: '/:any(.*)*', component: Dummy },
    ],
  })
}

function fakeMe(): Me {
  return {
    id: 1,
    username: 'doc',
    full_name: '张医生',
    institution: { id: 1, code: 'C1', name: '中心医院', kind: 'central' },
    department: null,
    roles: [],
    permissions: ['user.read'],
    menus: ['menu.home'],
    state: 'active',
    csrf_token: 't',
    mfa_enrolled: true,
    last_login_at: null,
    last_login_ip: null,
    failed_logins_since_last: 0,
    password_expires_at: null,
  }
}

describe('401 handler', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
  })

  it('clears the store and goes to /login with the current path as next', async () => {
    const router = makeRouter()
    await router.push('/admin/users?page=2')
    const store = useAuthStore()
    store.user = fakeMe()
    setCsrfToken('abc')

    await handleUnauthorized(router, store)

    expect(store.user).toBeNull()
    expect(getCsrfToken()).toBeNull()
    expect(router.currentRoute.value.path).toBe('/login')
    expect(router.currentRoute.value.query.next).toBe('/admin/users?page=2')
  })

  it.each(['//evil.com', 'https://evil.com', '/\\evil.com'])('never puts an unsafe next (%s) in the URL', (path) => {
    expect(loginLocation(path)).toEqual({ path: '/login', query: { next: '/' } })
  })

  it('does not nest next when already on an auth page', async () => {
    const router = makeRouter()
    await router.push('/login/password?next=/home')
    await handleUnauthorized(router, useAuthStore())
    expect(router.currentRoute.value.fullPath).toBe('/login')
  })

  it('sends 403 password_change_required to the change-password step', async () => {
    const router = makeRouter()
    await router.push('/profile')
    const store = useAuthStore()
    await handleStepRequired(router, store, 'password_change_required')
    expect(router.currentRoute.value.path).toBe('/login/password')
    expect(router.currentRoute.value.query.next).toBe('/profile')
    expect(store.pending?.state).toBe('password_change_required')
  })
})
