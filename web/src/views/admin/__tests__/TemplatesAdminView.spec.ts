// REQ: RPT-03, RPT-07, DICT-02 (issue 17; UX R5, R6): 模板管理 — templates by 设备类型 → 检查部位 and the phrases.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import ElementPlus, { ElMessageBox } from 'element-plus'
import * as api from '@/api/templates'
import type { Template, TemplateSummary } from '@/api/templates'
import { ApiError } from '@/api/http'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import TemplatesAdminView from '../TemplatesAdminView.vue'

vi.mock('@/api/templates', async (orig) => ({
  ...(await orig<typeof import('@/api/templates')>()),
  getTemplateTree: vi.fn(),
  listTemplates: vi.fn(),
  getTemplate: vi.fn(),
  createTemplate: vi.fn(),
  updateTemplate: vi.fn(),
  deleteTemplate: vi.fn(),
  listPhrases: vi.fn(),
  createPhrase: vi.fn(),
  updatePhrase: vi.fn(),
  deletePhrase: vi.fn(),
}))

function summary(id: number, name: string, extra: Partial<TemplateSummary> = {}): TemplateSummary {
  return {
    id,
    name,
    kind: 'single',
    scope: 'public',
    category: 'normal',
    modality: 'CT',
    body_part: '胸部',
    favorite: false,
    owner: null,
    institution: { id: 1, code: 'CENTRAL', name: '医联体中心医院' },
    updated_at: '2026-12-08T00:00:00Z',
    version: 3,
    ...extra,
  }
}

const PUBLIC = summary(1, '胸部CT平扫正常')
const MINE = summary(2, '我的肺结节', { scope: 'private', category: 'abnormal', owner: { id: 7, full_name: '李医生' }, institution: null })
const OTHERS = summary(3, '别人的组合', { kind: 'combination', scope: 'private', owner: { id: 9, full_name: '王医生' }, institution: null })

async function mountPage(perms: string[] = []) {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = { id: 7, username: 'doc', full_name: '李医生', permissions: perms, menus: ['menu.templates'] } as never
  const w = mount(TemplatesAdminView, { global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] }, attachTo: document.body })
  await flushPromises()
  return w
}

const byTestId = (id: string) => document.body.querySelector<HTMLElement>(`[data-testid="${id}"]`)!

/** The el-form-item around a control (its `is-error` class shows the field's message). */
const itemOf = (id: string) => byTestId(id).closest('.el-form-item') as HTMLElement

async function type(id: string, value: string) {
  const el = byTestId(id) as HTMLInputElement | HTMLTextAreaElement
  el.value = value
  el.dispatchEvent(new Event('input'))
  await flushPromises()
}

describe('TemplatesAdminView', () => {
  beforeEach(() => {
    vi.mocked(api.getTemplateTree).mockReset().mockResolvedValue([
      { modality: 'CT', label: 'CT', count: 3, parts: [{ body_part: '胸部', count: 3 }] },
    ])
    vi.mocked(api.listTemplates).mockReset().mockResolvedValue({ items: [PUBLIC, MINE, OTHERS], total: 3, page: 1, page_size: 20 })
    vi.mocked(api.listPhrases).mockReset().mockResolvedValue([
      { id: 11, text: '建议随访。', scope: 'private', shortcut: 1, pinyin: 'jysf' },
      { id: 12, text: '请结合临床。', scope: 'shared', shortcut: null, pinyin: 'qjhlc' },
    ])
    vi.mocked(api.createTemplate).mockReset()
    vi.mocked(api.updateTemplate).mockReset()
    vi.mocked(api.deleteTemplate).mockReset()
    vi.mocked(api.getTemplate).mockReset()
    vi.mocked(api.createPhrase).mockReset()
  })

  afterEach(() => {
    document.body.innerHTML = ''
  })

  it('lists templates with Chinese labels; a doctor edits only own private ones', async () => {
    const w = await mountPage()
    const rows = w.findAll('[data-testid="templates-admin-table"] .el-table__body tr')
    expect(rows).toHaveLength(3)
    expect(rows[0].text()).toContain('公共')
    expect(rows[0].text()).not.toContain('组合')
    expect(rows[1].text()).toContain('个人')
    expect(rows[1].text()).toContain('异常')
    expect(rows[2].text()).toContain('组合')
    expect(w.text()).not.toMatch(/\b(public|private|abnormal|single)\b/)
    expect(w.find('[data-testid="template-edit-1"]').exists()).toBe(false)
    expect(w.find('[data-testid="template-edit-2"]').exists()).toBe(true)
    expect(w.find('[data-testid="template-edit-3"]').exists()).toBe(false)
    await w.get('[data-testid="templates-admin-tree"] .el-tree-node__children .el-tree-node__content').trigger('click')
    await flushPromises()
    expect(api.listTemplates).toHaveBeenLastCalledWith(expect.objectContaining({ modality: 'CT', body_part: '胸部' }))
  })

  it('creates a single template; without template.manage only 个人 can be chosen', async () => {
    vi.mocked(api.createTemplate).mockResolvedValue({ ...MINE, sections: {} } as unknown as Template)
    const w = await mountPage()
    await w.get('[data-testid="template-new-single"]').trigger('click')
    await flushPromises()
    const radio = (s: string) => byTestId(`template-form-scope-${s}`).querySelector('input') as HTMLInputElement
    expect(radio('institution').disabled).toBe(true)
    expect(radio('public').disabled).toBe(true)
    byTestId('template-form-save').click()
    await flushPromises()
    expect(api.createTemplate).not.toHaveBeenCalled()
    expect(itemOf('template-form-name').classList).toContain('is-error')
    expect(itemOf('template-form-body-part').classList).toContain('is-error')
    await type('template-form-name', '肺结节随访')
    await type('template-form-body-part', '胸部')
    await type('template-form-findings', '右肺见约___mm结节，边界[清/不清]。')
    byTestId('template-form-save').click()
    await flushPromises()
    expect(api.createTemplate).toHaveBeenCalledWith({
      name: '肺结节随访',
      kind: 'single',
      scope: 'private',
      category: 'normal',
      modality: 'CT',
      body_part: '胸部',
      sections: { exam_method: '', findings: '右肺见约___mm结节，边界[清/不清]。', impression: '', recommendation: '', positive: null },
    })
  })

  it('a template manager may choose 公共, edits with the version, and sees why a template in use is not deleted', async () => {
    vi.mocked(api.getTemplate).mockResolvedValue({
      ...PUBLIC,
      sections: { exam_method: '', findings: '两肺清晰', impression: '未见异常', recommendation: '', positive: '阴性' },
      parts: [],
      fields: [],
    })
    vi.mocked(api.updateTemplate).mockResolvedValue({} as Template)
    vi.mocked(api.deleteTemplate).mockRejectedValue(new ApiError(409, 'template_in_use', '该模板被组合模板“胸腹联合”使用，不能删除'))
    const confirm = vi.spyOn(ElMessageBox, 'confirm').mockResolvedValue('confirm' as never)
    const w = await mountPage(['template.manage'])
    await w.get('[data-testid="template-edit-1"]').trigger('click')
    await flushPromises()
    expect((byTestId('template-form-scope-public').querySelector('input') as HTMLInputElement).disabled).toBe(false)
    await type('template-form-impression', '胸部CT平扫未见异常')
    byTestId('template-form-save').click()
    await flushPromises()
    expect(api.updateTemplate).toHaveBeenCalledWith(1, expect.objectContaining({
      scope: 'public',
      version: 3,
      sections: expect.objectContaining({ impression: '胸部CT平扫未见异常', positive: '阴性' }),
    }))
    await w.get('[data-testid="template-delete-1"]').trigger('click')
    await flushPromises()
    expect(api.deleteTemplate).toHaveBeenCalledWith(1)
    const messages = [...document.body.querySelectorAll('.el-message')].map((m) => m.textContent).join('|')
    expect(messages).toContain('胸腹联合')
    confirm.mockRestore()
  })

  it('a combination needs two parts, chosen among the single templates', async () => {
    const w = await mountPage()
    await w.get('[data-testid="template-new-combination"]').trigger('click')
    await flushPromises()
    await type('template-form-name', '胸腹联合')
    await type('template-form-body-part', '胸腹部')
    byTestId('template-form-save').click()
    await flushPromises()
    expect(api.createTemplate).not.toHaveBeenCalled()
    expect(itemOf('template-form-parts').classList).toContain('is-error')
    expect(itemOf('template-form-name').classList).not.toContain('is-error')
    expect(api.listTemplates).toHaveBeenLastCalledWith(expect.objectContaining({ kind: 'single' }))
  })

  it('phrases: lists scope and shortcut in Chinese; a taken shortcut shows the server message', async () => {
    vi.mocked(api.createPhrase).mockRejectedValue(new ApiError(409, 'shortcut_taken', 'Ctrl+1 已被“建议随访。”使用'))
    const w = await mountPage()
    const table = w.get('[data-testid="phrases-table"]')
    expect(table.text()).toContain('Ctrl+1')
    expect(table.text()).toContain('共享')
    expect(w.find('[data-testid="phrase-edit-12"]').exists()).toBe(false) // shared: template.manage only
    await w.get('[data-testid="phrase-new"]').trigger('click')
    await flushPromises()
    await type('phrase-form-text', '建议复查。')
    byTestId('phrase-form-save').click()
    await flushPromises()
    expect(api.createPhrase).toHaveBeenCalledWith({ text: '建议复查。', scope: 'private', shortcut: null })
    expect(byTestId('phrase-edit-dialog').textContent).toContain('Ctrl+1 已被')
  })
})
