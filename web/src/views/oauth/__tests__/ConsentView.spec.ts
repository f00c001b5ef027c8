import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import ElementPlus from 'element-plus'
import * as oauthApi from '@/api/oauth'
import { ApiError } from '@/api/http'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import ConsentView from '../ConsentView.vue'

const QUERY = 'response_type=code&client_id=abc12345&redirect_uri=https%3A%2F%2Fviewer.example.org%2Fcb&state=s1'

vi.mock('@/api/oauth', async (orig) => ({
  ...(await orig<typeof import('@/api/oauth')>()),
  getConsent: vi.fn(),
  decideConsent: vi.fn(),
}))
vi.mock('vue-router', () => ({ useRoute: () => ({ fullPath: `/oauth-consent?${QUERY}` }) }))

async function mountPage() {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = { id: 7, username: 'doctor_l1', full_name: '李初级' } as never
  const w = mount(ConsentView, { global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] } })
  await flushPromises()
  return w
}

describe('ConsentView', () => {
  afterEach(() => {
    vi.clearAllMocks()
    vi.unstubAllGlobals()
  })

  it('shows the application, the user and the scopes in Chinese, and goes back to the viewer on approval', async () => {
    vi.mocked(oauthApi.getConsent).mockResolvedValue({
      client_name: 'OHIF 阅片',
      institution_name: '医联体中心医院',
      scopes: [{ code: 'dicomweb.read', label: '读取影像（QIDO-RS / WADO-RS）' }],
      redirect_uri: 'https://viewer.example.org/cb',
    })
    vi.mocked(oauthApi.decideConsent).mockResolvedValue('https://viewer.example.org/cb?code=x&state=s1')
    const assign = vi.fn()
    vi.stubGlobal('location', { ...window.location, assign })
    const w = await mountPage()
    expect(oauthApi.getConsent).toHaveBeenCalledWith(QUERY)
    expect(w.text()).toContain('OHIF 阅片')
    expect(w.text()).toContain('李初级')
    expect(w.find('[data-testid="consent-scopes"]').text()).toBe('读取影像')
    expect(w.text()).toContain('viewer.example.org')
    await w.find('[data-testid="consent-approve"]').trigger('click')
    await flushPromises()
    expect(oauthApi.decideConsent).toHaveBeenCalledWith(QUERY, true)
    expect(assign).toHaveBeenCalledWith('https://viewer.example.org/cb?code=x&state=s1')
  })

  it('shows the server message for an invalid request and offers no buttons', async () => {
    vi.mocked(oauthApi.getConsent).mockRejectedValue(
      new ApiError(400, 'invalid_authorization_request', 'redirect_uri 与申请授权码时的不一致'),
    )
    const w = await mountPage()
    expect(w.find('[data-testid="consent-error"]').text()).toContain('redirect_uri')
    expect(w.find('[data-testid="consent-approve"]').exists()).toBe(false)
  })
})
