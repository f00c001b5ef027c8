import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'
import { defineComponent, h } from 'vue'
import { RouterView } from 'vue-router'
import ElementPlus, { ElMessageBox } from 'element-plus'
import * as tasksApi from '@/api/tasks'
import * as reportsApi from '@/api/reports'
import { ApiError } from '@/api/http'
import type { Report, TaskForm } from '@/api/types'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import TaskFormView from '../TaskFormView.vue'
import { draftSchema, draftUi, l2Schema, l2Ui } from '../../../../tests/unit/fixtures/forms'

vi.mock('@/api/tasks', () => ({ getTaskForm: vi.fn(), completeTask: vi.fn() }))
// The banner's case detail (issue 17): patient sex and age, exam numbers, 临床资料.
vi.mock('@/api/cases', () => ({
  getCase: vi.fn().mockResolvedValue({
    id: 5,
    patient: { name: '张三', sex: 'M', age: 56 },
    exams: [{ id: 1, exam_no: 'M01CT20250101000001', modality: 'CT', body_part: '胸部', exam_item: '胸部CT平扫', status: 'awaiting' }],
    clinical_info: '咳嗽两周，发热3天',
  }),
}))
vi.mock('@/api/reports', () => ({
  lockReport: vi.fn(),
  unlockReport: vi.fn(),
  unlockReportOnUnload: vi.fn(),
  saveDraft: vi.fn(),
  listRevisions: vi.fn(),
}))
// The template panel beside the editor (issue 17) has its own spec; here it only needs answers.
vi.mock('@/api/templates', async (orig) => ({
  ...(await orig<typeof import('@/api/templates')>()),
  getTemplateTree: vi.fn().mockResolvedValue([]),
  listTemplates: vi.fn().mockResolvedValue({ items: [], total: 0, page: 1, page_size: 50 }),
  listPhrases: vi.fn().mockResolvedValue([]),
}))

const Dummy = defineComponent({ render: () => null })

const REPORT: Report = {
  id: 31,
  case_id: 5,
  status: 'preliminary',
  version: 1,
  voided: false,
  lock: null,
  current: null,
  printed_at: null,
  print_count: 0,
}

function form(schema: Record<string, unknown>, ui: Record<string, unknown>, data: Record<string, unknown>, report: Report | null = REPORT): TaskForm {
  return {
    task: {
      id: 12,
      case_id: 5,
      case_no: 'RD20250101001',
      task_name: 'draft_report',
      title: '书写初步报告',
      lane_role: 'report_l1',
      assignee: { id: 7, full_name: '李医生' },
      in_pool: false,
      group: null,
      emergency: true,
      patient_name: '张三',
      modality: 'CT',
      body_part: '胸部',
      requesting_institution: { code: 'M1', name: '县医院' },
      created_at: '2025-01-01T00:00:00Z',
      claimed_at: '2025-01-01T00:05:00Z',
    },
    schema,
    ui_schema: ui,
    data,
    report,
  }
}

let pinia: Pinia
let router: Router

async function mountPage() {
  router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/tasks', component: Dummy },
      { path: '/tasks/:id', component: TaskFormView, props: true },
      { path: '/cases/:id', component: Dummy },
    ],
  })
  await router.push('/tasks/12')
  await router.isReady()
  const App = defineComponent({ render: () => h(RouterView) })
  const wrapper = mount(App, {
    global: { plugins: [pinia, router, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

function key(k: string, opts: KeyboardEventInit = {}) {
  window.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true, cancelable: true, ...opts }))
}

describe('TaskFormView (generated form + report lock)', () => {
  beforeEach(() => {
    pinia = createPinia()
    setActivePinia(pinia)
    useAuthStore().user = { id: 7, username: 'doc', full_name: '李医生' } as never
    vi.mocked(tasksApi.getTaskForm).mockReset()
    vi.mocked(tasksApi.completeTask).mockReset()
    vi.mocked(reportsApi.lockReport).mockReset().mockResolvedValue({ lock_token: 41, expires_at: '2025-01-01T01:00:00Z' })
    vi.mocked(reportsApi.unlockReport).mockReset().mockResolvedValue(undefined)
    vi.mocked(reportsApi.saveDraft).mockReset()
    vi.mocked(reportsApi.listRevisions).mockReset().mockResolvedValue([])
  })

  afterEach(() => {
    document.body.innerHTML = ''
  })

  it('locks the report on open, saves with Ctrl+S and submits with Ctrl+Enter, both with the lock token', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(
      form(draftSchema, draftUi, { findings: '两肺纹理清晰', impression: '未见异常', positive: '阴性' }),
    )
    vi.mocked(reportsApi.saveDraft).mockResolvedValue({
      id: 1, seq: 1, level: 'l1', author: { id: 7, full_name: '李医生' }, created_at: '2025-01-01T00:10:00Z',
      signed: false, findings: null, impression: null, recommendation: null, positive: null, changes: [],
    })
    vi.mocked(tasksApi.completeTask).mockResolvedValue({ case: {} as never })
    const wrapper = await mountPage()

    expect(reportsApi.lockReport).toHaveBeenCalledWith(31)
    expect(wrapper.find('[data-testid="task-lock-status"]').text()).toContain('李医生')
    expect(wrapper.find('[data-testid="task-form-title"]').text()).toBe('书写初步报告')
    expect(wrapper.find('[data-testid="emergency-tag"]').exists()).toBe(true)
    const banner = wrapper.find('[data-testid="report-banner"]')
    expect(banner.find('[data-testid="banner-patient"]').text()).toBe('张三')
    expect(banner.find('[data-testid="banner-sex"]').text()).toBe('男')
    expect(banner.find('[data-testid="banner-age"]').text()).toBe('56岁')
    expect(banner.find('[data-testid="banner-exam"]').text()).toContain('M01CT20250101000001 · CT 胸部 胸部CT平扫')
    expect(banner.find('[data-testid="banner-clinical"]').text()).toBe('临床资料：咳嗽两周，发热3天')

    await wrapper.find('textarea[data-testid="form-input-findings"]').setValue('右肺上叶见结节')
    key('s', { ctrlKey: true })
    await flushPromises()
    expect(reportsApi.saveDraft).toHaveBeenCalledWith(31, 41, {
      findings: '右肺上叶见结节',
      impression: '未见异常',
      recommendation: null,
      positive: '阴性',
    })
    expect(wrapper.find('[data-testid="task-autosave-status"]').text()).toContain('已自动保存')

    key('Enter', { ctrlKey: true })
    await flushPromises()
    expect(tasksApi.completeTask).toHaveBeenCalledWith('12', {
      data: { findings: '右肺上叶见结节', impression: '未见异常', positive: '阴性' },
      lock_token: 41,
    })
    expect(router.currentRoute.value.path).toBe('/tasks')
    // Completing consumed the lock: leaving the page does not unlock again.
    expect(reportsApi.unlockReport).not.toHaveBeenCalled()
    wrapper.unmount()
  })

  it('warns before submitting a conclusion whose side the findings never describe (UX R4): 返回修改 keeps editing', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(
      form(draftSchema, draftUi, { findings: '左肺上叶见一结节。', impression: '右肺上叶结节。', positive: '阳性' }),
    )
    vi.mocked(tasksApi.completeTask).mockResolvedValue({ case: {} as never })
    const confirm = vi.spyOn(ElMessageBox, 'confirm').mockRejectedValueOnce('cancel').mockResolvedValueOnce('confirm' as never)
    const wrapper = await mountPage()
    key('Enter', { ctrlKey: true })
    await flushPromises()
    expect(confirm).toHaveBeenCalledTimes(1)
    const [message, title, options] = confirm.mock.calls[0]!
    expect(title).toBe('提交前请核对')
    const shown = mount({ render: () => message as never })
    expect(shown.text()).toContain('诊断意见写“右”侧，影像所见只描述了“左”侧，请核对左右')
    expect(options).toMatchObject({ confirmButtonText: '仍要提交', cancelButtonText: '返回修改' })
    expect(tasksApi.completeTask).not.toHaveBeenCalled()
    key('Enter', { ctrlKey: true }) // 仍要提交 this time
    await flushPromises()
    expect(tasksApi.completeTask).toHaveBeenCalledTimes(1)
    wrapper.unmount()
    confirm.mockRestore()
  })

  it('409 lock_lost on submit: shows that the text was kept as a draft revision, form becomes read-only', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(
      form(draftSchema, draftUi, { findings: 'a', impression: 'b', positive: '阳性' }),
    )
    vi.mocked(tasksApi.completeTask).mockRejectedValue(
      new ApiError(409, 'lock_lost', '编辑锁已失效', { revision_id: 88 }),
    )
    const wrapper = await mountPage()
    await wrapper.find('[data-testid="task-submit"]').trigger('click')
    await flushPromises()
    const lost = wrapper.find('[data-testid="task-lock-lost"]')
    expect(lost.exists()).toBe(true)
    expect(lost.text()).toContain('已保存为草稿修订')
    expect(lost.text()).toContain('#88')
    expect(wrapper.find('[data-testid="task-submit"]').attributes('disabled')).toBeDefined()
    expect((wrapper.find('textarea[data-testid="form-input-findings"]').element as HTMLTextAreaElement).disabled).toBe(true)
    wrapper.unmount()
  })

  it('leaving the page saves pending text and unlocks with the token', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(
      form(draftSchema, draftUi, { findings: 'a', impression: 'b', positive: '阴性' }),
    )
    vi.mocked(reportsApi.saveDraft).mockResolvedValue({
      id: 2, seq: 2, level: 'l1', author: { id: 7, full_name: '李医生' }, created_at: '2025-01-01T00:10:00Z',
      signed: false, findings: null, impression: null, recommendation: null, positive: null, changes: [],
    })
    const wrapper = await mountPage()
    await wrapper.find('textarea[data-testid="form-input-findings"]').setValue('改过的所见')
    await wrapper.find('[data-testid="task-back"]').trigger('click')
    await flushPromises()
    expect(router.currentRoute.value.path).toBe('/tasks')
    expect(reportsApi.saveDraft).toHaveBeenCalledTimes(1)
    expect(vi.mocked(reportsApi.saveDraft).mock.calls[0][1]).toBe(41)
    expect(reportsApi.unlockReport).toHaveBeenCalledWith(31, 41)
    wrapper.unmount()
  })

  it('opens read-only when someone else holds the lock', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(form(draftSchema, draftUi, {}))
    vi.mocked(reportsApi.lockReport).mockRejectedValue(
      new ApiError(409, 'report_locked', '报告正在被他人编辑', { holder: { id: 8, full_name: '王医生' }, expires_at: '2025-01-01T00:30:00Z' }),
    )
    const wrapper = await mountPage()
    expect(wrapper.find('[data-testid="task-lock-other"]').text()).toContain('王医生')
    expect(wrapper.find('[data-testid="task-submit"]').attributes('disabled')).toBeDefined()
    wrapper.unmount()
  })

  it('blocks 驳回 without a reason on the client and maps form_invalid errors onto fields', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(
      form(l2Schema, l2Ui, { findings: 'a', impression: 'b', positive: '阴性' }),
    )
    const wrapper = await mountPage()
    await wrapper.find('[data-testid="form-option-decision-reject"] input').setValue(true)
    await flushPromises()
    await wrapper.find('[data-testid="task-submit"]').trigger('click')
    await flushPromises()
    expect(tasksApi.completeTask).not.toHaveBeenCalled()
    expect(wrapper.find('[data-testid="form-error-reject_reason"]').text()).toContain('此项为必填项')

    await wrapper.find('input[data-testid="form-input-reject_reason"]').setValue('图像与描述不符')
    await flushPromises()
    vi.mocked(tasksApi.completeTask).mockRejectedValue(
      new ApiError(400, 'form_invalid', '表单校验失败', {
        errors: [
          { path: 'impression', message: '诊断意见过短' },
          { path: '', message: '当前任务状态不允许提交' },
        ],
      }),
    )
    await wrapper.find('[data-testid="task-submit"]').trigger('click')
    await flushPromises()
    expect(tasksApi.completeTask).toHaveBeenCalledWith('12', {
      data: { findings: 'a', impression: 'b', positive: '阴性', decision: 'reject', reject_reason: '图像与描述不符' },
      lock_token: 41,
    })
    expect(wrapper.find('[data-testid="form-error-impression"]').text()).toBe('诊断意见过短')
    expect(wrapper.find('[data-testid="task-form-errors"]').text()).toContain('当前任务状态不允许提交')
    wrapper.unmount()
  })

  it('a task without a report has no lock, autosave or revision panel', async () => {
    vi.mocked(tasksApi.getTaskForm).mockResolvedValue(form(draftSchema, draftUi, { findings: 'a', impression: 'b', positive: '阴性' }, null))
    vi.mocked(tasksApi.completeTask).mockResolvedValue({ case: {} as never })
    const wrapper = await mountPage()
    expect(reportsApi.lockReport).not.toHaveBeenCalled()
    expect(wrapper.find('[data-testid="task-save-draft"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="revision-history"]').exists()).toBe(false)
    await wrapper.find('[data-testid="task-submit"]').trigger('click')
    await flushPromises()
    expect(tasksApi.completeTask).toHaveBeenCalledWith('12', { data: { findings: 'a', impression: 'b', positive: '阴性' } })
    wrapper.unmount()
  })
})
