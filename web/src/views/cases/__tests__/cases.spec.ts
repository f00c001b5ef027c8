import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { createMemoryHistory, createRouter, RouterView, type Router } from 'vue-router'
import { defineComponent, h } from 'vue'
import ElementPlus from 'element-plus'
import * as casesApi from '@/api/cases'
import * as reportsApi from '@/api/reports'
import * as settingsApi from '@/api/settings'
import { resetSettingsCache, SAVE_DELAY_MS } from '@/composables/useSettings'
import { ApiError } from '@/api/http'
import type { CaseDetail, CaseItem } from '@/api/types'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import CasesView from '../CasesView.vue'
import CaseCreateView from '../CaseCreateView.vue'
import CaseDetailView from '../CaseDetailView.vue'

vi.mock('@/api/cases', () => ({
  listCases: vi.fn(),
  caseCounts: vi.fn(async () => ({ window: { date_from: '2025-01-01', date_to: '2025-01-07' }, counts: {}, institutions: [] })),
  getCase: vi.fn(),
  createCase: vi.fn(),
  getCaseDiagram: vi.fn(),
}))
vi.mock('@/api/reports', () => ({ printReport: vi.fn() }))
vi.mock('@/api/clinicalQueries', () => ({ listClinicalQueries: vi.fn(async () => []), listProcessTasks: vi.fn() }))
vi.mock('@/api/settings', () => ({ getMySettings: vi.fn(), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))
vi.mock('@/components/bpmn/BpmnViewer.vue', () => ({
  __esModule: true,
  default: defineComponent({
    props: { xml: String, active: Array, completed: Array, height: String },
    setup: (p) => () => h('div', { 'data-testid': 'bpmn-viewer-stub', 'data-active': (p.active as string[]).join(',') }),
  }),
}))

const Dummy = defineComponent({ render: () => null })
let pinia: Pinia
let router: Router

async function mountAt(path: string, user: Record<string, unknown>) {
  useAuthStore().user = { id: 7, username: 'u', full_name: '用户', permissions: [], menus: ['menu.cases'], ...user } as never
  router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/cases', component: CasesView },
      { path: '/cases/new', component: CaseCreateView },
      { path: '/cases/:id', component: CaseDetailView, props: true },
      { path: '/tasks/:id', component: Dummy },
    ],
  })
  await router.push(path)
  await router.isReady()
  const App = defineComponent({ render: () => h(RouterView) })
  const wrapper = mount(App, {
    global: { plugins: [pinia, router, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

const ITEM: CaseItem = {
  id: 5,
  case_no: 'RD20250101001',
  status: 'open',
  emergency: true,
  patient: { name: '张三', sex: 'M', age: 56 },
  exams: [
    { id: 1, exam_no: 'E1', modality: 'CT', body_part: '胸部', exam_item: '平扫', status: 'released' },
    { id: 2, exam_no: 'E2', modality: 'MR', body_part: '头部', exam_item: '平扫', status: 'review_rejected' },
  ],
  requesting_institution: { id: 2, code: 'M1', name: '县医院' },
  created_at: '2025-01-01T00:00:00Z',
  current_tasks: [{ id: 12, task_name: 'review_level3', title: '审核医生审核', assignee: null, in_pool: true }],
  report_status: 'released',
  printed: false,
}

const DETAIL: CaseDetail = {
  ...ITEM,
  clinical_info: '咳嗽两周',
  dispatch_mode: 'pool',
  target_group: { code: 'chest', name: '胸部组' },
  deployment: { id: 3, process_id: 'remote_diagnosis', version: 2 },
  history: [
    { ts: '2025-01-01T00:00:00Z', event: 'case_created', event_name: '提交申请', actor: '登记员', task_title: null, details: null },
    { ts: '2025-01-02T00:00:00Z', event: 'report_corrected', event_name: '报告更正', actor: '审核医生', task_title: null, details: { reason: '左右侧写反' } },
  ],
  report: {
    id: 31,
    case_id: 5,
    status: 'released',
    version: 2,
    voided: false,
    lock: null,
    current: {
      id: 9, seq: 4, level: 'l3', author: { id: 3, full_name: '赵主任' }, created_at: '2025-01-02T00:00:00Z',
      signed: true, findings: '右肺上叶见结节', impression: '考虑良性', recommendation: '三个月复查', positive: '阳性', changes: [],
    },
    printed_at: null,
    print_count: 0,
  },
}

describe('cases pages', () => {
  beforeEach(() => {
    pinia = createPinia()
    setActivePinia(pinia)
    vi.mocked(casesApi.listCases).mockReset().mockResolvedValue({ items: [ITEM], total: 1, page: 1, page_size: 20 })
    vi.mocked(casesApi.getCase).mockReset().mockResolvedValue(structuredClone(DETAIL))
    vi.mocked(casesApi.getCaseDiagram).mockReset().mockResolvedValue({ bpmn_xml: '<x/>', active: ['review_level3'], completed: ['start'] })
    vi.mocked(casesApi.createCase).mockReset()
    vi.mocked(reportsApi.printReport).mockReset()
    resetSettingsCache()
    vi.mocked(settingsApi.getMySettings).mockReset().mockResolvedValue([])
    vi.mocked(settingsApi.putMySetting).mockReset().mockImplementation(async (key, value) => ({ key, value, source: 'user' }))
    vi.mocked(settingsApi.deleteMySetting).mockReset()
  })

  afterEach(() => {
    vi.useRealTimers()
    document.body.innerHTML = ''
  })

  const headers = (w: { findAll: (s: string) => { text: () => string }[] }) =>
    w.findAll('.el-table__header-wrapper th .cell').map((c) => c.text().trim()).filter(Boolean)

  it('columns follow list.cases.columns (default or own); 列设置 hides, reorders and saves them', async () => {
    const w0 = await mountAt('/cases', {})
    expect(headers(w0)).toEqual(['急诊', '状态', '剩余时限', '申请单号', '患者', '检查', '申请医院', '当前环节', '报告状态', '创建时间', '操作'])
    w0.unmount()

    // An institution default: 检查 hidden, 患者 first; columns it does not name follow, shown.
    resetSettingsCache()
    vi.mocked(settingsApi.getMySettings).mockResolvedValue([
      { key: 'list.cases.columns', value: [{ id: 'patient', shown: true }, { id: 'exams', shown: false }], source: 'institution' },
    ])
    vi.useFakeTimers({ shouldAdvanceTime: true })
    const w = await mountAt('/cases', {})
    expect(headers(w)).toEqual(['患者', '急诊', '状态', '剩余时限', '申请单号', '申请医院', '当前环节', '报告状态', '创建时间', '操作'])
    expect(w.find('tr.el-table__row').text()).toContain('张三')
    expect(w.find('tr.el-table__row .exam-line').exists()).toBe(false)

    await w.find('[data-testid="case-table-columns"]').trigger('click')
    await flushPromises()
    const panel = document.querySelector('[data-testid="case-table-columns-panel"]')!
    expect(panel.textContent).toContain('列设置')
    expect(panel.textContent).toContain('报告状态')
    ;(document.querySelector('[data-testid="case-table-columns-shown-exams"] input') as HTMLInputElement).click()
    ;(document.querySelector('[data-testid="case-table-columns-shown-status"] input') as HTMLInputElement).click()
    ;(document.querySelector('[data-testid="case-table-columns-down-patient"]') as HTMLButtonElement).click()
    await flushPromises()
    // The hidden 检查 comes back where it was (after 患者), then 患者 moves below it.
    expect(headers(w)).toEqual(['检查', '患者', '急诊', '剩余时限', '申请单号', '申请医院', '当前环节', '报告状态', '创建时间', '操作'])
    vi.advanceTimersByTime(SAVE_DELAY_MS)
    await flushPromises()
    expect(settingsApi.putMySetting).toHaveBeenCalledTimes(1)
    const [key, value] = vi.mocked(settingsApi.putMySetting).mock.calls[0]
    expect(key).toBe('list.cases.columns')
    expect((value as { id: string; shown: boolean }[]).map((c) => [c.id, c.shown])).toEqual([
      ['exams', true],
      ['patient', true],
      ['emergency', true],
      ['status', false],
      ['tat', true],
      ['case_no', true],
      ['institution', true],
      ['current_tasks', true],
      ['report_status', true],
      ['created_at', true],
    ])
    w.unmount()
  })

  it('lists cases with R2 status labels/colours, 急诊 and 未打印 markers; 新建申请 needs case.create', async () => {
    const wrapper = await mountAt('/cases', {})
    const row = wrapper.find('tr.el-table__row')
    const tags = row.findAll('[data-testid="exam-status-tag"]')
    expect(tags.map((t) => t.text())).toContain('已发布')
    expect(tags.map((t) => t.text())).toContain('审核驳回')
    expect(row.find('.exam-status-review_rejected').exists()).toBe(true)
    expect(row.find('[data-testid="emergency-tag"]').exists()).toBe(true)
    expect(row.find('[data-testid="case-not-printed"]').exists()).toBe(true)
    expect(wrapper.find('[data-testid="case-create"]').exists()).toBe(false)
    wrapper.unmount()

    const w2 = await mountAt('/cases', { permissions: ['case.create'] })
    expect(w2.find('[data-testid="case-create"]').exists()).toBe(true)
    await w2.find('tr.el-table__row').trigger('dblclick')
    await flushPromises()
    expect(router.currentRoute.value.path).toBe('/cases/5')
    w2.unmount()
  })

  it('report status in words, never the code: draft 书写中, a rejected round 审核驳回, voided 已作废', async () => {
    const items = [
      { ...ITEM, id: 6, report_status: 'draft' },
      { ...ITEM, id: 7, report_status: 'rejected_l3' },
      { ...ITEM, id: 8, report_status: 'voided' },
      { ...ITEM, id: 9, report_status: 'preliminary' },
    ]
    vi.mocked(casesApi.listCases).mockResolvedValue({ items, total: 4, page: 1, page_size: 20 })
    const wrapper = await mountAt('/cases', {})
    const rows = wrapper.findAll('tr.el-table__row')
    expect(rows[0].find('[data-testid="case-report-status"]').text()).toBe('书写中')
    expect(rows[1].find('.exam-status-review_rejected').exists()).toBe(true)
    expect(rows[2].find('[data-testid="case-report-status"]').text()).toBe('已作废')
    expect(rows[3].find('.exam-status-preliminary').exists()).toBe(true)
    for (const code of ['draft', 'rejected_l3', 'voided', 'preliminary']) expect(wrapper.text()).not.toContain(code)
    wrapper.unmount()
  })

  it('detail: report, corrected banner with reason, history, diagram markers; 打印 only for the requesting hospital', async () => {
    const other = await mountAt('/cases/5', { permissions: ['report.print'], institution: { id: 1, code: 'C1', name: '中心医院' } })
    expect(other.find('[data-testid="case-report-findings"]').text()).toBe('右肺上叶见结节')
    expect(other.find('[data-testid="case-report-corrected"]').text()).toContain('报告已更正')
    expect(other.find('[data-testid="case-report-corrected"]').text()).toContain('左右侧写反')
    expect(other.find('[data-testid="case-history"]').text()).toContain('提交申请')
    expect(other.find('[data-testid="bpmn-viewer-stub"]').attributes('data-active')).toBe('review_level3')
    expect(other.find('[data-testid="case-print"]').exists()).toBe(false)
    other.unmount()

    vi.mocked(reportsApi.printReport).mockResolvedValue({ ...DETAIL.report!, printed_at: '2025-01-03T00:00:00Z', print_count: 1 })
    const printSpy = vi.spyOn(window, 'print').mockImplementation(() => undefined)
    const own = await mountAt('/cases/5', { permissions: ['report.print'], institution: { id: 2, code: 'M1', name: '县医院' } })
    await own.find('[data-testid="case-print"]').trigger('click')
    await flushPromises()
    expect(reportsApi.printReport).toHaveBeenCalledWith(31)
    expect(own.find('[data-testid="case-printed-tag"]').text()).toBe('已打印')
    expect(own.find('[data-testid="case-report-printed"]').text()).toContain('1')
    expect(printSpy).toHaveBeenCalled()
    own.unmount()
  })

  it('detail: a voided report shows the 已作废 banner and cannot be printed', async () => {
    vi.mocked(casesApi.getCase).mockResolvedValue({ ...structuredClone(DETAIL), report: { ...DETAIL.report!, voided: true } })
    const w = await mountAt('/cases/5', { permissions: ['report.print'], institution: { id: 2, code: 'M1', name: '县医院' } })
    expect(w.find('[data-testid="case-report-voided"]').text()).toContain('已作废')
    expect(w.find('[data-testid="case-print"]').exists()).toBe(false)
    w.unmount()
  })

  it('new case: Enter moves to the next field, Ctrl+S validates and submits', async () => {
    vi.mocked(casesApi.createCase).mockResolvedValue({ ...DETAIL, id: 6 })
    const w = await mountAt('/cases/new', { permissions: ['case.create'] })
    const patientNo = w.find('input[data-testid="case-patient-no"]')
    expect(document.activeElement).toBe(patientNo.element)
    await patientNo.setValue('P001')
    await patientNo.trigger('keydown', { key: 'Enter' })
    expect(document.activeElement).toBe(w.find('input[data-testid="case-patient-name"]').element)

    // Ctrl+S with empty required fields: nothing is sent, messages appear.
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 's', ctrlKey: true }))
    await flushPromises()
    expect(casesApi.createCase).not.toHaveBeenCalled()
    await new Promise((r) => setTimeout(r, 150)) // el-form-item shows errors after a 100 ms debounce
    expect(w.text()).toContain('请填写姓名')

    await w.find('input[data-testid="case-patient-name"]').setValue('张三')
    const sel = (id: string) => w.findAllComponents({ name: 'ElSelect' }).find((c) => c.attributes('data-testid') === id)!
    sel('case-patient-sex').vm.$emit('update:modelValue', 'M')
    w.findAllComponents({ name: 'ElDatePicker' })[0].vm.$emit('update:modelValue', '1969-05-01')
    sel('case-exam-modality').vm.$emit('update:modelValue', 'CT')
    await w.find('input[data-testid="case-exam-body-part"]').setValue('胸部')
    await w.find('input[data-testid="case-exam-item"]').setValue('平扫')
    await w.find('textarea[data-testid="case-clinical-info"]').setValue('咳嗽两周')
    await w.find('[data-testid="case-exam-add"]').trigger('click')
    await flushPromises()
    expect(w.findAll('[data-testid="case-exam-row"]')).toHaveLength(2)
    await w.findAll('[data-testid="case-exam-remove"]')[1].trigger('click')
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 's', ctrlKey: true }))
    await flushPromises()
    expect(casesApi.createCase).toHaveBeenCalledTimes(1)
    const body = vi.mocked(casesApi.createCase).mock.calls[0][0]
    expect(body).toMatchObject({
      patient: { patient_no: 'P001', name: '张三', sex: 'M', birth_date: '1969-05-01' },
      exams: [{ modality: 'CT', body_part: '胸部', exam_item: '平扫' }],
      emergency: false,
      clinical_info: '咳嗽两周',
    })
    expect(body.exams[0].exam_time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    expect(router.currentRoute.value.path).toBe('/cases/6')
    w.unmount()
  })

  it('new case: server field errors land under the fields', async () => {
    vi.mocked(casesApi.createCase).mockRejectedValue(
      new ApiError(400, 'validation_error', '参数错误', { fields: { 'patient.patient_no': ['患者编号已存在'] } }),
    )
    const w = await mountAt('/cases/new', { permissions: ['case.create'] })
    await w.find('input[data-testid="case-patient-no"]').setValue('P001')
    await w.find('input[data-testid="case-patient-name"]').setValue('张三')
    const sel = (id: string) => w.findAllComponents({ name: 'ElSelect' }).find((c) => c.attributes('data-testid') === id)!
    sel('case-patient-sex').vm.$emit('update:modelValue', 'F')
    w.findAllComponents({ name: 'ElDatePicker' })[0].vm.$emit('update:modelValue', '1990-01-01')
    sel('case-exam-modality').vm.$emit('update:modelValue', 'DX')
    await w.find('input[data-testid="case-exam-body-part"]').setValue('胸部')
    await w.find('input[data-testid="case-exam-item"]').setValue('正位')
    await w.find('[data-testid="case-submit"]').trigger('click')
    await flushPromises()
    await new Promise((r) => setTimeout(r, 150))
    expect(w.text()).toContain('患者编号已存在')
    expect(w.find('[data-testid="case-form-error"]').text()).toContain('参数错误')
    w.unmount()
  })
})
