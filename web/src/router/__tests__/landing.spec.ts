import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import { defineComponent } from 'vue'
import ElementPlus from 'element-plus'
import * as authApi from '@/api/auth'
import * as settingsApi from '@/api/settings'
import type { EffectiveSetting } from '@/api/settings'
import type { Me } from '@/api/types'
import { createAppI18n } from '@/i18n'
import { buildMenus, landingChoices, landingPath } from '@/menus'
import { useAuthStore } from '@/stores/auth'
import { resetSettingsCache, SAVE_DELAY_MS } from '@/composables/useSettings'
import LoginView from '@/views/auth/LoginView.vue'
import ProfileView from '@/views/profile/ProfileView.vue'
import { routes } from '../routes'
import { resolveNavigation } from '../guards'
import { userLandingPath } from '../landing'

vi.mock('@/api/auth', () => ({
  login: vi.fn(),
  fetchMe: vi.fn(),
  logout: vi.fn(),
  listSessions: vi.fn(),
  revokeSession: vi.fn(),
}))
vi.mock('@/api/settings', () => ({ getMySettings: vi.fn(), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))

const Dummy = defineComponent({ render: () => null })

function me(menus: string[], permissions: string[] = []): Me {
  return {
    id: 7,
    username: 'doc',
    full_name: '李医生',
    institution: { id: 1, code: 'C1', name: '中心医院', kind: 'central' },
    department: null,
    roles: [{ code: 'report_l1', name: '初级报告医生' }],
    permissions,
    menus,
    state: 'active',
    csrf_token: 't',
    mfa_enrolled: false,
    last_login_at: null,
    last_login_ip: null,
    failed_logins_since_last: 0,
    password_expires_at: null,
  }
}

function landing(value: unknown, source: EffectiveSetting['source'] = 'user'): EffectiveSetting[] {
  return [{ key: 'landing_page', value, source }]
}

const DOCTOR_MENUS = ['menu.home', 'menu.profile', 'menu.tasks', 'menu.pool', 'menu.cases']

describe('menus: landing page and permission pages', () => {
  it('lands on the chosen menu when the user holds it, else as before', () => {
    expect(landingPath(DOCTOR_MENUS, 'menu.pool')).toBe('/pool')
    expect(landingPath(DOCTOR_MENUS, 'menu.users')).toBe('/home') // not theirs: never a page they may not open
    expect(landingPath(['menu.audit'], 'menu.users')).toBe('/admin/audit')
    expect(landingPath(DOCTOR_MENUS, null)).toBe('/home')
    expect(landingPath(DOCTOR_MENUS, 42)).toBe('/home')
  })

  it('offers only the menus the user holds as landing pages, never a permission page', () => {
    const codes = landingChoices(['menu.home', 'menu.users', 'bogus']).map((m) => m.code)
    expect(codes).toEqual(['menu.home', 'menu.users'])
  })

  it('puts 默认个人设置 after 用户管理 for holders of setting.default.manage only', () => {
    const perms = ['setting.default.manage']
    expect(buildMenus(['menu.home', 'menu.users', 'menu.dicom_nodes'], perms).map((m) => m.path)).toEqual([
      '/home',
      '/admin/users',
      '/admin/settings/defaults',
      '/admin/dicom/nodes',
    ])
    expect(buildMenus(['menu.home'], perms).map((m) => m.path)).toEqual(['/home', '/admin/settings/defaults'])
    expect(buildMenus(['menu.home', 'menu.users'], []).map((m) => m.path)).toEqual(['/home', '/admin/users'])
    const zh = createAppI18n('zh-CN').global
    expect(zh.t(buildMenus([], perms)[0].labelKey)).toBe('默认个人设置')
    const page = routes.find((r) => r.path === '/')!.children!.find((c) => c.path === 'admin/settings/defaults')
    expect(page?.meta).toMatchObject({ perm: 'setting.default.manage', titleKey: 'menu.settingDefaults' })
  })
})

describe('landing after login', () => {
  let pinia: Pinia
  beforeEach(() => {
    pinia = createPinia()
    setActivePinia(pinia)
    resetSettingsCache()
    vi.mocked(authApi.fetchMe).mockReset()
    vi.mocked(authApi.login).mockReset()
    vi.mocked(settingsApi.getMySettings).mockReset()
    vi.mocked(settingsApi.putMySetting).mockReset().mockImplementation(async (key, value) => ({ key, value, source: 'user' }))
    vi.mocked(settingsApi.deleteMySetting).mockReset()
  })
  afterEach(() => {
    vi.useRealTimers()
    document.body.innerHTML = ''
  })

  it('the guard sends / to the landing page setting (own or default) when allowed', async () => {
    const router = createRouter({ history: createMemoryHistory(), routes })
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(DOCTOR_MENUS))
    vi.mocked(settingsApi.getMySettings).mockResolvedValue(landing('menu.cases', 'institution'))
    expect(await resolveNavigation(router.resolve('/'), useAuthStore())).toBe('/cases')
    // A logged-in user on /login goes there too.
    expect(await resolveNavigation(router.resolve('/login'), useAuthStore())).toBe('/cases')
  })

  it('a landing page the user may not open falls back to today’s choice; so does a settings failure', async () => {
    const router = createRouter({ history: createMemoryHistory(), routes })
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(['menu.audit']))
    vi.mocked(settingsApi.getMySettings).mockResolvedValue(landing('menu.tasks', 'institution'))
    expect(await resolveNavigation(router.resolve('/'), useAuthStore())).toBe('/admin/audit')

    setActivePinia(createPinia())
    resetSettingsCache()
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(DOCTOR_MENUS))
    vi.mocked(settingsApi.getMySettings).mockRejectedValue(new Error('down'))
    expect(await resolveNavigation(router.resolve('/'), useAuthStore())).toBe('/home')
  })

  it('LoginView goes to the user’s landing page, reloading the settings at login', async () => {
    const router: Router = createRouter({
      history: createMemoryHistory(),
      routes: [
        { path: '/login', component: LoginView },
        { path: '/home', component: Dummy },
        { path: '/pool', component: Dummy },
      ],
    })
    await router.push('/login')
    await router.isReady()
    vi.mocked(authApi.login).mockResolvedValue({ csrf_token: 'x', state: 'active' })
    vi.mocked(authApi.fetchMe).mockResolvedValue(me(DOCTOR_MENUS))
    vi.mocked(settingsApi.getMySettings).mockResolvedValue(landing('menu.pool'))
    const w = mount(LoginView, { global: { plugins: [pinia, router, createAppI18n('zh-CN'), ElementPlus] }, attachTo: document.body })
    await flushPromises()
    await w.find('input[data-testid="login-username"]').setValue('doc')
    await w.find('input[data-testid="login-password"]').setValue('Secret#123')
    await w.find('form[data-testid="login-form"]').trigger('submit')
    await flushPromises()
    expect(router.currentRoute.value.path).toBe('/pool')
    expect(settingsApi.getMySettings).toHaveBeenCalledTimes(1)
    w.unmount()
  })

  it('a user cleared while the settings load (a 401 elsewhere) gets the system choice, not a crash', async () => {
    const store = useAuthStore()
    store.user = me(DOCTOR_MENUS)
    vi.mocked(settingsApi.getMySettings).mockImplementation(async () => {
      store.clear()
      return landing('menu.pool')
    })
    expect(await userLandingPath(store, true)).toBe('/home')
  })

  it('userLandingPath without a user is the system choice', async () => {
    expect(await userLandingPath(useAuthStore())).toBe('/home')
    expect(settingsApi.getMySettings).not.toHaveBeenCalled()
  })
})

describe('个人中心: 登录后首页', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    resetSettingsCache()
    vi.mocked(authApi.listSessions).mockReset().mockResolvedValue([])
    vi.mocked(settingsApi.putMySetting).mockReset().mockImplementation(async (key, value) => ({ key, value, source: 'user' }))
    vi.mocked(settingsApi.deleteMySetting).mockReset().mockResolvedValue({ key: 'landing_page', value: 'menu.cases', source: 'institution' })
  })
  afterEach(() => {
    vi.useRealTimers()
    document.body.innerHTML = ''
  })

  async function mountProfile(settings: EffectiveSetting[], menus = DOCTOR_MENUS) {
    const pinia = createPinia()
    setActivePinia(pinia)
    resetSettingsCache()
    useAuthStore().user = me(menus)
    vi.mocked(settingsApi.getMySettings).mockReset().mockResolvedValue(settings)
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/profile', component: ProfileView }] })
    await router.push('/profile')
    await router.isReady()
    const w = mount(ProfileView, { global: { plugins: [pinia, router, createAppI18n('zh-CN'), ElementPlus] }, attachTo: document.body })
    await flushPromises()
    return w
  }

  function options(): string[] {
    return [...document.querySelectorAll('.profile-landing-popper .el-select-dropdown__item')].map((e) => e.textContent!.trim())
  }

  it('lists only the user’s pages by their Chinese names and saves the choice', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    const w = await mountProfile(landing(null, 'builtin'))
    expect(w.find('[data-testid="profile-preferences"]').text()).toContain('登录后首页')
    expect(w.find('[data-testid="profile-landing-now"]').text()).toContain('登录后进入“首页”')
    await w.find('[data-testid="profile-landing"] .el-select__wrapper').trigger('click')
    await flushPromises()
    expect(options()).toEqual(['默认', '首页', '个人中心', '我的任务', '抢单池', '远程诊断申请'])
    expect(document.body.textContent).not.toContain('menu.')
    const picker = w.findAllComponents({ name: 'ElSelect' }).find((c) => c.attributes('data-testid') === 'profile-landing')!
    picker.vm.$emit('update:modelValue', 'menu.pool')
    await flushPromises()
    expect(w.find('[data-testid="profile-landing-now"]').text()).toContain('登录后进入“抢单池”')
    vi.advanceTimersByTime(SAVE_DELAY_MS)
    await flushPromises()
    expect(settingsApi.putMySetting).toHaveBeenCalledWith('landing_page', 'menu.pool')
    w.unmount()
  })

  it('默认 drops the own value (the institution’s default applies); a default the user cannot open shows as 默认', async () => {
    const w = await mountProfile(landing('menu.tasks'))
    expect(w.find('[data-testid="profile-landing"]').text()).toContain('我的任务')
    const picker = w.findAllComponents({ name: 'ElSelect' }).find((c) => c.attributes('data-testid') === 'profile-landing')!
    picker.vm.$emit('update:modelValue', '')
    await flushPromises()
    expect(settingsApi.deleteMySetting).toHaveBeenCalledWith('landing_page')
    expect(w.find('[data-testid="profile-landing"]').text()).toContain('默认')
    expect(w.find('[data-testid="profile-landing-now"]').text()).toContain('登录后进入“远程诊断申请”')
    w.unmount()

    const w2 = await mountProfile(landing('menu.users', 'institution'))
    expect(w2.find('[data-testid="profile-landing"]').text()).toContain('默认')
    expect(w2.text()).not.toContain('menu.users')
    expect(w2.find('[data-testid="profile-landing-now"]').text()).toContain('登录后进入“首页”')
    w2.unmount()
  })
})
