import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { defineComponent, h } from 'vue'
import ElementPlus, { ElMessageBox } from 'element-plus'
import * as processesApi from '@/api/processes'
import { ApiError } from '@/api/http'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import ProcessesView from '../ProcessesView.vue'

vi.mock('@/api/processes', () => ({
  listProcesses: vi.fn(),
  getProcess: vi.fn(),
  validateProcess: vi.fn(),
  deployProcess: vi.fn(),
  migrateCases: vi.fn(),
}))
const markErrors = vi.fn()
vi.mock('@/components/bpmn/BpmnModeler.vue', () => ({
  __esModule: true,
  default: defineComponent({
    props: { xml: String },
    setup(_, { expose }) {
      expose({ getXml: async () => '<edited/>', markErrors, focusElement: vi.fn() })
      return () => h('div', { 'data-testid': 'bpmn-modeler-stub' })
    },
  }),
}))
vi.mock('@/components/bpmn/BpmnViewer.vue', () => ({
  __esModule: true,
  default: defineComponent({ props: { xml: String }, setup: () => () => h('div', { 'data-testid': 'bpmn-viewer-stub' }) }),
}))

const DEP = {
  id: 3,
  process_id: 'remote_diagnosis',
  version: 2,
  content_hash: 'abcdef0123456789',
  deployed_at: '2025-01-01T00:00:00Z',
  deployed_by: '流程管理员',
  source: 'cli',
  running_cases: 4,
  latest: true,
}

async function mountView(permissions: string[]) {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = { id: 1, permissions, menus: ['menu.processes'] } as never
  const wrapper = mount(ProcessesView, {
    global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

const body = () => document.body

describe('流程管理 ProcessesView', () => {
  beforeEach(() => {
    vi.mocked(processesApi.listProcesses).mockReset().mockResolvedValue([DEP])
    vi.mocked(processesApi.getProcess).mockReset().mockResolvedValue({
      id: 3, process_id: 'remote_diagnosis', version: 2, bpmn_xml: '<bpmn/>', dmn: {}, forms: [],
    })
    vi.mocked(processesApi.validateProcess).mockReset()
    vi.mocked(processesApi.deployProcess).mockReset()
    vi.mocked(processesApi.migrateCases).mockReset()
    markErrors.mockReset()
  })
  afterEach(() => {
    document.body.innerHTML = ''
    vi.restoreAllMocks()
  })

  it('lists deployments; only process.deploy sees 编辑 and 迁移', async () => {
    const ro = await mountView(['process.read'])
    const row = ro.find('tr.el-table__row')
    expect(row.text()).toContain('remote_diagnosis')
    expect(row.text()).toContain('v2')
    expect(row.text()).toContain('abcdef012345')
    expect(row.find('[data-testid="process-latest"]').text()).toBe('最新')
    expect(row.find('[data-testid="process-edit"]').exists()).toBe(false)
    await row.find('[data-testid="process-view"]').trigger('click')
    await flushPromises()
    expect(processesApi.getProcess).toHaveBeenCalledWith(3)
    expect(body().querySelector('[data-testid="bpmn-viewer-stub"]')).not.toBeNull()
    ro.unmount()
  })

  it('edit: 校验 lists the errors and marks the elements; 发布 shows a 403 message and keeps the editor open', async () => {
    const w = await mountView(['process.read', 'process.deploy'])
    await w.find('tr.el-table__row [data-testid="process-edit"]').trigger('click')
    await flushPromises()
    await flushPromises()
    expect(body().querySelector('[data-testid="bpmn-modeler-stub"]')).not.toBeNull()

    vi.mocked(processesApi.validateProcess).mockResolvedValue({
      ok: false,
      errors: [{ element: 'draft_report', message: '用户任务缺少表单' }],
    })
    ;(body().querySelector('[data-testid="process-validate"]') as HTMLElement).click()
    await flushPromises()
    expect(processesApi.validateProcess).toHaveBeenCalledWith('remote_diagnosis', '<edited/>')
    expect(body().querySelector('[data-testid="process-problems"]')!.textContent).toContain('用户任务缺少表单')
    expect(markErrors).toHaveBeenCalledWith(['draft_report'])

    vi.spyOn(ElMessageBox, 'confirm').mockResolvedValue('confirm' as never)
    vi.mocked(processesApi.deployProcess).mockRejectedValue(new ApiError(403, 'mfa_stale', '请重新进行双因素认证后再发布'))
    ;(body().querySelector('[data-testid="process-deploy"]') as HTMLElement).click()
    await flushPromises()
    expect(processesApi.deployProcess).toHaveBeenCalledWith('remote_diagnosis', '<edited/>')
    expect(body().querySelector('[data-testid="process-edit-message"]')!.textContent).toContain('请重新进行双因素认证后再发布')
    expect(body().querySelector('[data-testid="bpmn-modeler-stub"]')).not.toBeNull()

    vi.mocked(processesApi.deployProcess).mockResolvedValue({ deployment: { ...DEP, id: 4, version: 3 }, created: true })
    ;(body().querySelector('[data-testid="process-deploy"]') as HTMLElement).click()
    await flushPromises()
    expect(processesApi.listProcesses).toHaveBeenCalledTimes(2)
    w.unmount()
  })

  it('migrate: parses the case ids and calls migrate on the chosen deployment', async () => {
    const w = await mountView(['process.read', 'process.deploy'])
    await w.find('tr.el-table__row [data-testid="process-migrate"]').trigger('click')
    await flushPromises()
    const ta = body().querySelector('textarea[data-testid="process-migrate-ids"]') as HTMLTextAreaElement
    ta.value = '12，13 x'
    ta.dispatchEvent(new Event('input'))
    ;(body().querySelector('[data-testid="process-migrate-confirm"]') as HTMLElement).click()
    await flushPromises()
    expect(processesApi.migrateCases).not.toHaveBeenCalled()
    expect(body().querySelector('[data-testid="process-migrate-error"]')!.textContent).toContain('有效的申请 ID')

    vi.mocked(processesApi.migrateCases).mockResolvedValue({ migrated: 3 })
    ta.value = '12，13 14\n12'
    ta.dispatchEvent(new Event('input'))
    ;(body().querySelector('[data-testid="process-migrate-confirm"]') as HTMLElement).click()
    await flushPromises()
    expect(processesApi.migrateCases).toHaveBeenCalledWith(3, [12, 13, 14])
    w.unmount()
  })
})
