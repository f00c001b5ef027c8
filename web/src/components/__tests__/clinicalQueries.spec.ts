import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import ElementPlus from 'element-plus'
import * as api from '@/api/clinicalQueries'
import type { ClinicalQuery, ProcessTaskItem } from '@/api/clinicalQueries'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import ClinicalQueries from '../ClinicalQueries.vue'

vi.mock('@/api/clinicalQueries', () => ({
  listClinicalQueries: vi.fn(),
  startClinicalQuery: vi.fn(),
  listProcessTasks: vi.fn(),
  claimProcessTask: vi.fn(),
  getProcessTaskForm: vi.fn(),
  completeProcessTask: vi.fn(),
}))

const ANSWERED: ClinicalQuery = {
  id: 3,
  kind: 'info',
  kind_name: '补充临床资料',
  status: 'answered',
  status_name: '已答复',
  question: '请补充既往手术史',
  due: 'PT24H',
  asked_by: 'l1',
  asked_at: '2026-12-07T01:00:00+00:00',
  answer: '2019年右肺上叶切除术',
  unavailable: false,
  reason: '',
  answered_at: '2026-12-07T02:00:00+00:00',
  overdue: true,
}

let wrapper: VueWrapper | null = null

async function mountAs(permissions: string[]) {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = { id: 7, username: 'u', full_name: '用户', permissions, menus: [] } as never
  wrapper = mount(ClinicalQueries, {
    props: { caseId: 5, caseOpen: true },
    global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

beforeEach(() => {
  vi.mocked(api.listClinicalQueries).mockReset().mockResolvedValue([structuredClone(ANSWERED)])
  vi.mocked(api.startClinicalQuery).mockReset().mockResolvedValue(structuredClone(ANSWERED))
  vi.mocked(api.listProcessTasks).mockReset().mockResolvedValue({ items: [], total: 0, page: 1, page_size: 100 })
})

afterEach(() => {
  wrapper?.unmount()
  wrapper = null
  document.body.innerHTML = ''
})

describe('临床资料补充 on the case page', () => {
  it('lists the queries with the status name and answer; a doctor asks with a question and due time', async () => {
    const w = await mountAs(['task.claim'])
    const table = w.find('[data-testid="clinical-query-table"]').text()
    expect(table).toContain('请补充既往手术史')
    expect(table).toContain('已答复')
    expect(table).toContain('曾超时')
    expect(table).toContain('2019年右肺上叶切除术')
    expect(table).not.toContain('answered')
    expect(api.listProcessTasks).not.toHaveBeenCalled() // a doctor answers nothing
    await w.find('[data-testid="clinical-query-ask"]').trigger('click')
    await flushPromises()
    await w.find('[data-testid="clinical-query-send"]').trigger('click')
    expect(api.startClinicalQuery).not.toHaveBeenCalled() // an empty question is refused in the page
    await w.find('textarea[data-testid="clinical-query-question"]').setValue('  请补充血常规  ')
    await w.find('[data-testid="clinical-query-send"]').trigger('click')
    await flushPromises()
    expect(api.startClinicalQuery).toHaveBeenCalledWith(5, { question: '请补充血常规', due: 'PT24H' })
    expect(api.listClinicalQueries).toHaveBeenCalledTimes(2)
  })

  it('the requesting hospital sees its open answer task for this case only, and no ask button', async () => {
    const task = (id: number, caseId: number, assignee: unknown = null) =>
      ({ id, case_id: caseId, process_id: 'clinical_query', process_name: '临床资料补充', assignee }) as ProcessTaskItem
    vi.mocked(api.listProcessTasks).mockImplementation(async (scope) => ({
      items: scope === 'open' ? [task(11, 5), task(12, 6)] : [],
      total: 1,
      page: 1,
      page_size: 100,
    }))
    const w = await mountAs(['clinical_query.answer', 'case.read'])
    expect(w.find('[data-testid="clinical-query-ask"]').exists()).toBe(false)
    const buttons = w.findAll('[data-testid="clinical-query-answer-open"]')
    expect(buttons.map((b) => b.text())).toEqual(['领取并答复'])
  })

  it('a doctor asks for images; the query shows 等待补传影像 and its kind, never a raw code', async () => {
    const awaiting: ClinicalQuery = {
      ...structuredClone(ANSWERED),
      id: 4,
      kind: 'images',
      kind_name: '补传影像',
      status: 'awaiting_images',
      status_name: '等待补传影像',
      question: '请补传薄层重建序列',
      answer: '',
      answered_at: null,
      overdue: false,
    }
    vi.mocked(api.listClinicalQueries).mockResolvedValue([awaiting])
    const w = await mountAs(['task.claim'])
    const table = w.find('[data-testid="clinical-query-table"]').text()
    expect(table).toContain('补传影像')
    expect(table).toContain('等待补传影像')
    expect(table).not.toContain('awaiting_images')
    expect(table).not.toContain('images')
    await w.find('[data-testid="clinical-query-ask-images"]').trigger('click')
    await flushPromises()
    expect(document.body.textContent).toContain('需补传的影像')
    await w.find('textarea[data-testid="clinical-query-question"]').setValue('请补传增强序列')
    await w.find('[data-testid="clinical-query-send"]').trigger('click')
    await flushPromises()
    expect(api.startClinicalQuery).toHaveBeenCalledWith(5, {
      question: '请补传增强序列',
      due: 'PT24H',
      request_images: true,
    })
  })

  it('the requesting hospital is asked to re-send images and may only say it cannot', async () => {
    const task = {
      id: 21,
      case_id: 5,
      task_name: 'resend_images',
      process_id: 'clinical_query',
      process_name: '临床资料补充',
      assignee: null,
    } as ProcessTaskItem
    vi.mocked(api.listProcessTasks).mockImplementation(async (scope) => ({
      items: scope === 'open' ? [task] : [],
      total: 1,
      page: 1,
      page_size: 100,
    }))
    const w = await mountAs(['clinical_query.answer', 'case.read'])
    const alert = w.find('[data-testid="clinical-query-resend"]')
    expect(alert.text()).toContain('中心医院医生请本院补传影像')
    expect(alert.text()).toContain('影像到达后此请求自动完成')
    expect(w.findAll('[data-testid="clinical-query-answer-open"]').map((b) => b.text())).toEqual(['无法补传'])
  })
})
