// REQ: RPT-03, RPT-06, RPT-07, DICT-02 (issue 17, UX R5, R7): the template panel beside the report editor.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import ElementPlus, { ElMessageBox } from 'element-plus'
import * as api from '@/api/templates'
import type { ReportTexts, Template, TemplateSummary } from '@/api/templates'
import * as settingsApi from '@/api/settings'
import { createAppI18n } from '@/i18n'
import { resetSettingsCache } from '@/composables/useSettings'
import { useAuthStore } from '@/stores/auth'
import TemplatePanel from '../TemplatePanel.vue'

vi.mock('@/api/templates', async (orig) => ({
  ...(await orig<typeof import('@/api/templates')>()),
  getTemplateTree: vi.fn(),
  listTemplates: vi.fn(),
  getTemplate: vi.fn(),
  applyTemplate: vi.fn(),
  markTemplateUsed: vi.fn(),
  setFavorite: vi.fn(),
}))
vi.mock('@/api/settings', () => ({
  getMySettings: vi.fn(),
  putMySetting: vi.fn(),
  deleteMySetting: vi.fn(),
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
    institution: null,
    updated_at: '2026-12-08T00:00:00Z',
    version: 1,
    ...extra,
  }
}

const ITEMS = [summary(1, '胸部CT平扫正常'), summary(2, '肺结节', { category: 'abnormal', kind: 'combination' })]

function full(s: TemplateSummary): Template {
  return {
    ...s,
    sections: { exam_method: null, findings: `${s.name}所见[未见/可见]`, impression: '1. ___', recommendation: null, positive: null },
    parts: [],
    fields: [],
  }
}

const EMPTY: ReportTexts = { findings: '', impression: '', recommendation: '', positive: null }
const APPLIED: ReportTexts = { findings: '胸部CT平扫正常所见[未见/可见]', impression: '1. ___', recommendation: '', positive: null }

let report: ReportTexts
let cursor: api.Cursor | null

async function mountPanel(disabled = false) {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = { id: 7, username: 'doc', full_name: '李医生', permissions: [], menus: [] } as never
  const w = mount(TemplatePanel, {
    props: { disabled, getReport: () => report, getCursor: () => cursor },
    global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return w
}

function searchBox(w: ReturnType<typeof mount>) {
  return w.get('[data-testid="template-search"] input, input[data-testid="template-search"]')
}

describe('TemplatePanel', () => {
  beforeEach(() => {
    vi.useRealTimers()
    resetSettingsCache()
    report = { ...EMPTY }
    cursor = null
    vi.mocked(settingsApi.getMySettings).mockReset().mockResolvedValue([])
    vi.mocked(settingsApi.putMySetting).mockReset().mockImplementation(async (key, value) => ({ key, value, source: 'user' }))
    vi.mocked(api.getTemplateTree).mockReset().mockResolvedValue([
      { modality: 'CT', label: 'CT', count: 2, parts: [{ body_part: '胸部', count: 2 }] },
      { modality: 'MR', label: 'MR', count: 1, parts: [{ body_part: '头颅', count: 1 }] },
    ])
    vi.mocked(api.listTemplates).mockReset().mockResolvedValue({ items: ITEMS, total: 2, page: 1, page_size: 50 })
    vi.mocked(api.getTemplate).mockReset().mockImplementation(async (id) => full(ITEMS.find((i) => i.id === id)!))
    vi.mocked(api.applyTemplate).mockReset().mockResolvedValue(APPLIED)
    vi.mocked(api.markTemplateUsed).mockReset().mockResolvedValue(undefined)
    vi.mocked(api.setFavorite).mockReset().mockResolvedValue(undefined)
  })

  afterEach(() => {
    document.body.innerHTML = ''
  })

  it('shows the four tabs, the 设备类型 → 检查部位 tree, the results and a preview of the first', async () => {
    const w = await mountPanel()
    expect(w.findAll('.el-tabs__item').map((x) => x.text())).toEqual(['常用★', '个人', '科室共享', '全部'])
    expect(w.get('[data-testid="template-tree"]').text()).toContain('胸部')
    expect(w.get('[data-testid="template-tree"]').text()).toContain('头颅')
    expect(w.get('[data-testid="template-item-2"]').text()).toContain('组合')
    expect(w.get('[data-testid="template-item-2"]').text()).toContain('异常')
    expect(w.get('[data-testid="template-preview"]').text()).toContain('胸部CT平扫正常所见')
    expect(w.get('[data-testid="template-preview"]').text()).toContain('公共')
    expect(api.listTemplates).toHaveBeenCalledWith(expect.objectContaining({ tab: 'all', page_size: 50 }))
  })

  it('searches by pinyin through the server, moves with ↑/↓ and inserts with Enter at the cursor, then counts the use', async () => {
    cursor = { field: 'findings', offset: 3 }
    report = { findings: '既往：', impression: '', recommendation: '', positive: null }
    const w = await mountPanel()
    const input = searchBox(w)
    await input.setValue('xbct')
    await new Promise((r) => setTimeout(r, 260))
    await flushPromises()
    expect(api.listTemplates).toHaveBeenLastCalledWith(expect.objectContaining({ q: 'xbct' }))
    expect(api.getTemplateTree).toHaveBeenLastCalledWith(expect.objectContaining({ q: 'xbct' }))

    await input.trigger('keydown', { key: 'ArrowDown' })
    await flushPromises()
    expect(w.get('[data-testid="template-item-2"]').classes()).toContain('is-active')
    expect(w.get('[data-testid="template-preview"]').text()).toContain('肺结节所见')
    await input.trigger('keydown', { key: 'ArrowDown' }) // wraps
    await input.trigger('keydown', { key: 'Enter' })
    await flushPromises()
    expect(api.applyTemplate).toHaveBeenCalledWith(1, 'insert', report, { field: 'findings', offset: 3 })
    expect(w.emitted('applied')![0]).toEqual([APPLIED, { field: 'findings', offset: 3 }])
    expect(api.markTemplateUsed).toHaveBeenCalledWith(1)
  })

  it('Shift+Enter replaces, asking first when the report has text; a refusal applies nothing', async () => {
    report = { findings: '已有内容', impression: '', recommendation: '', positive: null }
    const confirm = vi.spyOn(ElMessageBox, 'confirm').mockRejectedValueOnce('cancel').mockResolvedValueOnce('confirm' as never)
    const w = await mountPanel()
    await searchBox(w).trigger('keydown', { key: 'Enter', shiftKey: true })
    await flushPromises()
    expect(confirm).toHaveBeenCalledTimes(1)
    expect(api.applyTemplate).not.toHaveBeenCalled()
    await searchBox(w).trigger('keydown', { key: 'Enter', shiftKey: true })
    await flushPromises()
    expect(api.applyTemplate).toHaveBeenCalledWith(1, 'replace', report, null)
    expect(w.emitted('applied')![0]).toEqual([APPLIED, null])
    confirm.mockRestore()
  })

  it('replaces an empty report without asking; Esc hands the focus back', async () => {
    const confirm = vi.spyOn(ElMessageBox, 'confirm')
    const w = await mountPanel()
    await w.get('[data-testid="template-replace"]').trigger('click')
    await flushPromises()
    expect(confirm).not.toHaveBeenCalled()
    expect(api.applyTemplate).toHaveBeenCalledWith(1, 'replace', EMPTY, null)
    await w.get('[data-testid="template-item-2"]').trigger('click', { altKey: true }) // UX R5: Alt+click replaces
    await flushPromises()
    expect(api.applyTemplate).toHaveBeenLastCalledWith(2, 'replace', EMPTY, null)
    await searchBox(w).trigger('keydown', { key: 'Escape' })
    expect(w.emitted('escape')).toHaveLength(1)
    confirm.mockRestore()
  })

  it('filters by a tree node, switches tabs and toggles a star', async () => {
    const w = await mountPanel()
    await w.get('[data-testid="template-node-MR/头颅"]').trigger('click')
    await flushPromises()
    expect(api.listTemplates).toHaveBeenLastCalledWith(expect.objectContaining({ modality: 'MR', body_part: '头颅' }))
    await w.findAll('.el-tabs__item')[0].trigger('click')
    await flushPromises()
    expect(api.listTemplates).toHaveBeenLastCalledWith(expect.objectContaining({ tab: 'favorite', modality: undefined }))
    await w.get('[data-testid="template-star-1"]').trigger('click')
    await flushPromises()
    expect(api.setFavorite).toHaveBeenCalledWith(1, true)
  })

  it('is disabled while the report is read-only, and folds to a strip saved as a user setting', async () => {
    const w = await mountPanel(true)
    expect(w.get('[data-testid="template-insert"]').attributes('disabled')).toBeDefined()
    await searchBox(w).trigger('keydown', { key: 'Enter' })
    await flushPromises()
    expect(api.applyTemplate).not.toHaveBeenCalled()

    vi.useFakeTimers()
    await w.get('[data-testid="template-panel-collapse"]').trigger('click')
    expect(w.find('[data-testid="template-panel"]').exists()).toBe(false)
    expect(w.find('[data-testid="template-panel-collapsed"]').exists()).toBe(true)
    vi.advanceTimersByTime(500)
    vi.useRealTimers()
    await flushPromises()
    expect(settingsApi.putMySetting).toHaveBeenCalledWith('report_editor.template_panel', { collapsed: true })
    // Alt+T (focusSearch) opens it again and focuses the search box
    await (w.vm as unknown as { focusSearch: () => Promise<void> }).focusSearch()
    await flushPromises()
    expect(w.find('[data-testid="template-panel"]').exists()).toBe(true)
    expect(document.activeElement).toBe(searchBox(w).element)
  })
})
