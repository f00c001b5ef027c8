import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import ElementPlus, { ElMessageBox } from 'element-plus'
import * as settingsApi from '@/api/settings'
import type { SettingDefault, SettingKeyInfo, SettingRole } from '@/api/settings'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import SettingDefaultsView from '../SettingDefaultsView.vue'

vi.mock('@/api/settings', () => ({
  getSettingKeys: vi.fn(),
  getSettingRoles: vi.fn(),
  getSettingDefaults: vi.fn(),
  putSettingDefault: vi.fn(),
  deleteSettingDefault: vi.fn(),
  getMySettings: vi.fn().mockResolvedValue([]),
  putMySetting: vi.fn(),
  deleteMySetting: vi.fn(),
}))

const KEYS: SettingKeyInfo[] = [
  { key: 'list.tasks.columns', name: '我的任务列表的列（显示、顺序、宽度）', default: [] },
  { key: 'list.cases.columns', name: '远程诊断申请列表的列（显示、顺序、宽度）', default: [] },
  { key: 'landing_page', name: '登录后首页', default: null },
  { key: 'viewer.presets', name: '阅片窗宽窗位预设', default: [{ id: 'lung', name: '肺窗', modality: 'CT', window_center: -600, window_width: 1500, key: '1' }] },
  { key: 'viewer.corner_text', name: '阅片四角信息', default: { top_left: [], top_right: [], bottom_left: [], bottom_right: [] } },
  { key: 'window.positions', name: '窗口位置', default: {} },
  { key: 'report_editor.font_mode', name: '报告编辑器字号', default: 'standard' },
]
const ROLES: SettingRole[] = [
  { id: 3, code: 'report_l1', name: '初级报告医生', menus: ['menu.home', 'menu.profile', 'menu.tasks', 'menu.pool', 'menu.cases', 'menu.imaging'] },
  { id: 9, code: 'sys_admin', name: '系统管理员', menus: ['menu.home', 'menu.profile', 'menu.users'] },
]
const DEFAULTS: SettingDefault[] = [
  { key: 'list.tasks.columns', name: KEYS[0].name, value: [{ id: 'modality', shown: false, width: null }], role: null, updated_at: '2026-01-01T00:00:00Z' },
  { key: 'landing_page', name: '登录后首页', value: 'menu.pool', role: { id: 3, code: 'report_l1', name: '初级报告医生' }, updated_at: '2026-01-01T00:00:00Z' },
  { key: 'report_editor.font_mode', name: '报告编辑器字号', value: 'large', role: null, updated_at: '2026-01-01T00:00:00Z' },
]

async function mountPage() {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = {
    id: 1,
    username: 'admin',
    full_name: '管理员',
    institution: { id: 1, code: 'CENTRAL', name: '医联体中心医院', kind: 'central' },
    permissions: ['setting.default.manage'],
    menus: ['menu.home', 'menu.users'],
  } as never
  const w = mount(SettingDefaultsView, { global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] }, attachTo: document.body })
  await flushPromises()
  return w
}

const cell = (w: Awaited<ReturnType<typeof mountPage>>, id: string) => w.find(`[data-testid="${id}"]`)
const select = (w: Awaited<ReturnType<typeof mountPage>>, id: string) =>
  w.findAllComponents({ name: 'ElSelect' }).find((c) => c.attributes('data-testid') === id)!

describe('默认个人设置', () => {
  beforeEach(() => {
    vi.mocked(settingsApi.getSettingKeys).mockReset().mockResolvedValue(structuredClone(KEYS))
    vi.mocked(settingsApi.getSettingRoles).mockReset().mockResolvedValue(structuredClone(ROLES))
    vi.mocked(settingsApi.getSettingDefaults).mockReset().mockResolvedValue(structuredClone(DEFAULTS))
    vi.mocked(settingsApi.putSettingDefault).mockReset().mockImplementation(async (key, roleId, value) => ({
      key, name: key, value, role: roleId === null ? null : { id: roleId, code: 'x', name: 'x' }, updated_at: '',
    }))
    vi.mocked(settingsApi.deleteSettingDefault).mockReset().mockResolvedValue()
  })
  afterEach(() => {
    vi.restoreAllMocks()
    document.body.innerHTML = ''
  })

  it('shows every key by its Chinese name with the institution and role defaults, never codes', async () => {
    const w = await mountPage()
    const text = w.text()
    for (const k of KEYS) expect(text).toContain(k.name)
    expect(text).toContain('医联体中心医院')
    expect(cell(w, 'sd-inst-list.tasks.columns').text()).toBe('隐藏：检查类别')
    expect(cell(w, 'sd-inst-landing_page').text()).toBe('未设置（使用系统默认）')
    expect(cell(w, 'sd-inst-report_editor.font_mode').text()).toBe('大')
    expect(cell(w, 'sd-role-landing_page-report_l1').text()).toBe('初级报告医生：抢单池')
    expect(cell(w, 'sd-readonly-viewer.corner_text').text()).toContain('此处暂只显示')
    expect(cell(w, 'sd-readonly-window.positions').exists()).toBe(true)
    expect(cell(w, 'sd-editor-viewer.presets').text()).toContain('肺窗')
    for (const code of ['list.', 'menu.', 'report_editor', 'landing_page', 'report_l1', 'large', 'modality']) {
      expect(text).not.toContain(code)
    }
    w.unmount()
  })

  it('the institution: hides a task-list column with the 列设置 editor and saves it; clears the font default', async () => {
    const w = await mountPage()
    expect(cell(w, 'sd-save-list.tasks.columns').attributes('disabled')).toBeDefined() // nothing changed yet
    await cell(w, 'sd-columns-tasks').trigger('click')
    await flushPromises()
    const panel = document.querySelector('[data-testid="sd-columns-tasks-panel"]')!
    expect(panel.textContent).toContain('点击“保存”后生效')
    ;(document.querySelector('[data-testid="sd-columns-tasks-shown-patient_name"] input') as HTMLInputElement).click()
    await flushPromises()
    expect(cell(w, 'sd-editor-list.tasks.columns').text()).toContain('隐藏：检查类别、姓名')
    await cell(w, 'sd-save-list.tasks.columns').trigger('click')
    await flushPromises()
    expect(settingsApi.putSettingDefault).toHaveBeenCalledTimes(1)
    const [key, roleId, value] = vi.mocked(settingsApi.putSettingDefault).mock.calls[0]
    expect([key, roleId]).toEqual(['list.tasks.columns', null])
    const shown = Object.fromEntries((value as { id: string; shown: boolean }[]).map((c) => [c.id, c.shown]))
    expect(shown).toMatchObject({ modality: false, patient_name: false, case_no: true })
    expect(settingsApi.getSettingDefaults).toHaveBeenCalledTimes(2) // reloaded after the save

    vi.spyOn(ElMessageBox, 'confirm').mockResolvedValue('confirm' as never)
    await cell(w, 'sd-clear-report_editor.font_mode').trigger('click')
    await flushPromises()
    expect(settingsApi.deleteSettingDefault).toHaveBeenCalledWith('report_editor.font_mode', null)
    // The landing page was never set for the institution: nothing to clear.
    expect(cell(w, 'sd-clear-landing_page').attributes('disabled')).toBeDefined()
    w.unmount()
  })

  it('a role: the landing page picker lists only the role’s pages by name; save and clear go to the role', async () => {
    const w = await mountPage()
    select(w, 'sd-target').vm.$emit('update:modelValue', '3')
    await flushPromises()
    expect(w.text()).toContain('初级报告医生的默认值')
    expect(cell(w, 'sd-landing').text()).toContain('抢单池') // the role's stored default
    await cell(w, 'sd-landing').find('.el-select__wrapper').trigger('click')
    await flushPromises()
    const options = [...document.querySelectorAll('.sd-landing-popper .el-select-dropdown__item')].map((e) => e.textContent!.trim())
    expect(options).toEqual(['系统默认（首页）', '首页', '个人中心', '我的任务', '抢单池', '远程诊断申请', '影像检查'])
    select(w, 'sd-landing').vm.$emit('update:modelValue', 'menu.cases')
    await flushPromises()
    await cell(w, 'sd-save-landing_page').trigger('click')
    await flushPromises()
    expect(settingsApi.putSettingDefault).toHaveBeenCalledWith('landing_page', 3, 'menu.cases')

    select(w, 'sd-font').vm.$emit('update:modelValue', 'extra_large')
    await flushPromises()
    await cell(w, 'sd-save-report_editor.font_mode').trigger('click')
    await flushPromises()
    expect(settingsApi.putSettingDefault).toHaveBeenCalledWith('report_editor.font_mode', 3, 'extra_large')

    vi.spyOn(ElMessageBox, 'confirm').mockResolvedValue('confirm' as never)
    await cell(w, 'sd-clear-landing_page').trigger('click')
    await flushPromises()
    expect(settingsApi.deleteSettingDefault).toHaveBeenCalledWith('landing_page', 3)

    // The 系统管理员 role opens 用户管理: its picker offers it, not the clinical pages.
    select(w, 'sd-target').vm.$emit('update:modelValue', '9')
    await flushPromises()
    const adminOptions = [...document.querySelectorAll('.sd-landing-popper .el-select-dropdown__item')].map((e) => e.textContent!.trim())
    expect(adminOptions).toEqual(['系统默认（首页）', '首页', '个人中心', '用户管理'])
    w.unmount()
  })

  it('viewer presets are edited as a small table and saved as the default', async () => {
    const w = await mountPage()
    await cell(w, 'sd-presets-edit').trigger('click')
    await flushPromises()
    expect(document.querySelector('[data-testid="sd-presets-table"]')!.textContent).toContain('窗宽')
    await (document.querySelector('[data-testid="sd-preset-add"]') as HTMLButtonElement).click()
    await flushPromises()
    ;(document.querySelector('[data-testid="sd-presets-apply"]') as HTMLButtonElement).click()
    await flushPromises()
    expect(document.body.textContent).toContain('请填写每个预设的名称') // the new row has no name yet
    const names = document.querySelectorAll<HTMLInputElement>('input[data-testid="sd-preset-name"]')
    names[1].value = '软组织窗'
    names[1].dispatchEvent(new Event('input'))
    await flushPromises()
    ;(document.querySelector('[data-testid="sd-presets-apply"]') as HTMLButtonElement).click()
    await flushPromises()
    expect(cell(w, 'sd-editor-viewer.presets').text()).toContain('肺窗、软组织窗（共 2 项）')
    await cell(w, 'sd-save-viewer.presets').trigger('click')
    await flushPromises()
    const [key, roleId, value] = vi.mocked(settingsApi.putSettingDefault).mock.calls[0]
    expect([key, roleId]).toEqual(['viewer.presets', null])
    expect(value).toEqual([
      { id: 'lung', name: '肺窗', modality: 'CT', window_center: -600, window_width: 1500, key: '1' },
      { id: 'preset_2', name: '软组织窗', modality: 'CT', window_center: 40, window_width: 400, key: null },
    ])
    w.unmount()
  })
})
