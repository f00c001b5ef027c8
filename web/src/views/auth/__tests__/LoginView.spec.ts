import { beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import { defineComponent } from 'vue'
import ElementPlus from 'element-plus'
import QRCode from 'qrcode'
import * as authApi from '@/api/auth'
import { ApiError } from '@/api/http'
import type { Me } from '@/api/types'
import { createAppI18n } from '@/i18n'
import LoginView from '../LoginView.vue'

vi.mock('@/api/auth', () => ({
  login: vi.fn(),
  getMfaEnrollment: vi.fn(),
  verifyMfa: vi.fn(),
  changePassword: vi.fn(),
  fetchMe: vi.fn(),
  logout: vi.fn(),
}))

// The landing page setting (issue 14): none set here; src/router/__tests__/landing.spec.ts covers it.
vi.mock('@/api/settings', () => ({ getMySettings: vi.fn().mockResolvedValue([]), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))

vi.mock('qrcode', () => ({ default: { toCanvas: vi.fn().mockResolvedValue(undefined) } }))

const Dummy = defineComponent({ render: () => null })

const ME: Me = {
  id: 7,
  username: 'doc',
  full_name: '李医生',
  institution: { id: 1, code: 'C1', name: '市中心医院', kind: 'central' },
  department: { id: 3, name: '放射科' },
  roles: [{ code: 'radiologist', name: '报告医生' }],
  permissions: [],
  menus: ['menu.home', 'menu.profile'],
  state: 'active',
  csrf_token: 'tok',
  mfa_enrolled: true,
  last_login_at: null,
  last_login_ip: null,
  failed_logins_since_last: 0,
  password_expires_at: null,
}

let pinia: Pinia
let router: Router

async function mountLogin(path = '/login') {
  router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/login', component: LoginView },
      { path: '/home', component: Dummy },
      { path: '/admin/users', component: Dummy },
      { path: '/register', component: Dummy },
      { path: '/register/status', component: Dummy },
    ],
  })
  await router.push(path)
  await router.isReady()
  const wrapper = mount(LoginView, {
    global: { plugins: [pinia, router, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

async function submitCredentials(wrapper: Awaited<ReturnType<typeof mountLogin>>, username: string, password: string) {
  await wrapper.find('input[data-testid="login-username"]').setValue(username)
  await wrapper.find('input[data-testid="login-password"]').setValue(password)
  await wrapper.find('form[data-testid="login-form"]').trigger('submit')
  await flushPromises()
}

describe('LoginView', () => {
  beforeEach(() => {
    pinia = createPinia()
    setActivePinia(pinia)
    vi.mocked(authApi.login).mockReset()
    vi.mocked(authApi.getMfaEnrollment).mockReset()
    vi.mocked(authApi.verifyMfa).mockReset()
    vi.mocked(authApi.fetchMe).mockReset()
    vi.mocked(QRCode.toCanvas).mockClear()
    document.body.innerHTML = ''
  })

  it('shows the MFA enrolment step (QR + secret) when login answers mfa_required', async () => {
    vi.mocked(authApi.login).mockResolvedValue({ csrf_token: 'x', state: 'mfa_required', mfa_enrolled: false })
    vi.mocked(authApi.getMfaEnrollment).mockResolvedValue({
      secret: 'JBSWY3DPEHPK3PXP',
      otpauth_uri: 'otpauth://totp/telerad:doc?secret=JBSWY3DPEHPK3PXP&issuer=telerad',
    })
    const wrapper = await mountLogin()

    await submitCredentials(wrapper, 'doc', 'Secret#123')

    expect(authApi.login).toHaveBeenCalledWith('doc', 'Secret#123')
    expect(wrapper.find('[data-testid="login-form"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="mfa-step"]').exists()).toBe(true)
    expect(wrapper.find('[data-testid="login-heading"]').text()).toBe('双因素认证')
    expect(wrapper.find('[data-testid="mfa-secret"]').text()).toBe('JBSWY3DPEHPK3PXP')
    const canvas = wrapper.find('canvas[data-testid="mfa-qr"]')
    expect(canvas.exists()).toBe(true)
    expect(QRCode.toCanvas).toHaveBeenCalledWith(
      canvas.element,
      'otpauth://totp/telerad:doc?secret=JBSWY3DPEHPK3PXP&issuer=telerad',
      expect.any(Object),
    )
    wrapper.unmount()
  })

  it('asks only for the code when already enrolled, then finishes login to next', async () => {
    vi.mocked(authApi.login).mockResolvedValue({ csrf_token: 'x', state: 'mfa_required', mfa_enrolled: true })
    vi.mocked(authApi.verifyMfa).mockResolvedValue({ csrf_token: 'y', state: 'active' })
    vi.mocked(authApi.fetchMe).mockResolvedValue(ME)
    const wrapper = await mountLogin('/login?next=/admin/users')

    await submitCredentials(wrapper, 'doc', 'Secret#123')
    expect(authApi.getMfaEnrollment).not.toHaveBeenCalled()
    expect(wrapper.find('[data-testid="mfa-qr"]').exists()).toBe(false)

    await wrapper.find('input[data-testid="mfa-code"]').setValue('123456')
    await wrapper.find('[data-testid="mfa-step"] form').trigger('submit')
    await flushPromises()

    expect(authApi.verifyMfa).toHaveBeenCalledWith('123456')
    expect(authApi.fetchMe).toHaveBeenCalled()
    expect(router.currentRoute.value.fullPath).toBe('/admin/users')
    wrapper.unmount()
  })

  it('rejects a malformed MFA code without calling the API', async () => {
    vi.mocked(authApi.login).mockResolvedValue({ csrf_token: 'x', state: 'mfa_required', mfa_enrolled: true })
    const wrapper = await mountLogin()
    await submitCredentials(wrapper, 'doc', 'Secret#123')
    await wrapper.find('input[data-testid="mfa-code"]').setValue('12ab')
    await wrapper.find('[data-testid="mfa-step"] form').trigger('submit')
    await flushPromises()
    expect(authApi.verifyMfa).not.toHaveBeenCalled()
    expect(wrapper.find('[data-testid="mfa-error"]').text()).toContain('请输入 6 位数字验证码')
    wrapper.unmount()
  })

  it('shows the change-password form with the expiry reason', async () => {
    vi.mocked(authApi.login).mockResolvedValue({
      csrf_token: 'x',
      state: 'password_change_required',
      reason: 'password_expired',
    })
    const wrapper = await mountLogin()
    await submitCredentials(wrapper, 'doc', 'Secret#123')
    expect(wrapper.find('[data-testid="password-reason"]').text()).toContain('密码已过期（90天），请修改密码')
    expect(wrapper.find('input[data-testid="pwd-new"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('shows the Chinese error and the unlock time when the account is locked', async () => {
    vi.mocked(authApi.login).mockRejectedValue(
      new ApiError(423, 'account_locked', '账号已锁定', { locked_until: '2024-03-01T02:30:00Z' }),
    )
    const wrapper = await mountLogin()
    await submitCredentials(wrapper, 'doc', 'wrong')
    expect(wrapper.find('[data-testid="login-error"]').text()).toContain('账号已锁定')
    expect(wrapper.find('[data-testid="login-locked-until"]').text()).toContain('2024-03-01 10:30')
    expect(wrapper.find('[data-testid="login-form"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('goes straight to the landing page when the login is active', async () => {
    vi.mocked(authApi.login).mockResolvedValue({ csrf_token: 'x', state: 'active' })
    vi.mocked(authApi.fetchMe).mockResolvedValue(ME)
    const wrapper = await mountLogin('/login?next=//evil.com')
    await submitCredentials(wrapper, 'doc', 'Secret#123')
    expect(router.currentRoute.value.path).toBe('/home')
    wrapper.unmount()
  })
})
