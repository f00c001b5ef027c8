import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import ElementPlus from 'element-plus'
import * as oauthApi from '@/api/oauth'
import type { OAuthClient } from '@/api/oauth'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import OAuthClientsView from '../OAuthClientsView.vue'

vi.mock('@/api/oauth', async (orig) => ({
  ...(await orig<typeof import('@/api/oauth')>()),
  listOAuthClients: vi.fn(),
  createOAuthClient: vi.fn(),
  revokeOAuthClient: vi.fn(),
}))
vi.mock('@/api/institutions', () => ({
  listInstitutions: vi.fn().mockResolvedValue([
    { id: 1, code: 'CENTRAL', name: '医联体中心医院', kind: 'central', departments: [], parent_id: null },
    { id: 2, code: 'M01', name: '第一成员医院', kind: 'member', departments: [], parent_id: 1 },
  ]),
}))

const ROW: OAuthClient = {
  client_id: '0e514331b6ff443ea3d41f20',
  name: 'AI 肺结节',
  institution_code: 'M01',
  institution_name: '第一成员医院',
  scopes: [
    { code: 'dicomweb.read', label: '读取影像（QIDO-RS / WADO-RS）' },
    { code: 'ai.write', label: '写入AI分析结果' },
  ],
  public: false,
  redirect_uris: [],
  created_at: '2026-12-07T03:00:00Z',
  created_by: 'sysadmin',
  revoked_at: null,
  revoked_by: null,
}

async function mountPage() {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = {
    id: 1,
    username: 'sysadmin',
    full_name: '系统管理员',
    institution: { id: 1, code: 'CENTRAL', name: '医联体中心医院', kind: 'central' },
    permissions: ['oauth.manage'],
    menus: ['menu.home', 'menu.oauth_clients'],
  } as never
  const w = mount(OAuthClientsView, { global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] }, attachTo: document.body })
  await flushPromises()
  return w
}

describe('OAuthClientsView', () => {
  beforeEach(() => {
    vi.mocked(oauthApi.listOAuthClients).mockResolvedValue([ROW])
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.clearAllMocks()
  })

  it('lists clients with Chinese scope labels, never raw scope codes', async () => {
    const w = await mountPage()
    const table = w.find('[data-testid="oauth-table"]').text()
    expect(table).toContain('AI 肺结节')
    expect(table).toContain('读取影像')
    expect(table).toContain('写入AI分析结果')
    expect(table).toContain('系统对接')
    expect(table).not.toContain('dicomweb.read')
    expect(table).not.toContain('ai.write')
  })

  it('registers a client and shows its secret once', async () => {
    vi.mocked(oauthApi.createOAuthClient).mockResolvedValue({ ...ROW, client_secret: 'S3cr3t-shown-once' })
    const w = await mountPage()
    const el = (id: string) => document.querySelector(`[data-testid="${id}"]`) as HTMLElement
    await w.find('[data-testid="oauth-new"]').trigger('click')
    await flushPromises()
    // Validation first: no name, no institution.
    el('oauth-save').click()
    await flushPromises()
    expect(oauthApi.createOAuthClient).not.toHaveBeenCalled()
    expect(el('oauth-name').closest('.el-form-item')?.classList.contains('is-error')).toBe(true)
    const input = el('oauth-name') as HTMLInputElement // ElInput puts the attribute on its <input>
    input.value = 'AI 肺结节'
    input.dispatchEvent(new Event('input'))
    const select = w.findAllComponents({ name: 'ElSelect' }).find((c) => c.attributes('data-testid') === 'oauth-institution')!
    select.vm.$emit('update:modelValue', 'M01')
    await flushPromises()
    el('oauth-save').click()
    await flushPromises()
    expect(oauthApi.createOAuthClient).toHaveBeenCalledWith({
      name: 'AI 肺结节',
      institution_code: 'M01',
      scopes: ['dicomweb.read'],
      redirect_uris: [],
      public: false,
    })
    expect(document.querySelector('[data-testid="oauth-created-secret"]')?.textContent).toBe('S3cr3t-shown-once')
    expect(document.body.textContent).toContain('只显示这一次')
  })

  it('revokes after confirmation', async () => {
    vi.mocked(oauthApi.revokeOAuthClient).mockResolvedValue({ ...ROW, revoked_at: '2026-12-07T04:00:00Z' })
    const w = await mountPage()
    await w.find('[data-testid="oauth-revoke"]').trigger('click')
    await flushPromises()
    const confirm = Array.from(document.querySelectorAll('.el-message-box button')).find((b) => b.textContent?.includes('吊销'))
    ;(confirm as HTMLElement).click()
    await flushPromises()
    expect(oauthApi.revokeOAuthClient).toHaveBeenCalledWith('0e514331b6ff443ea3d41f20')
  })
})
