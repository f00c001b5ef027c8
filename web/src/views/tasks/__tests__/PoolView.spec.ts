import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import { defineComponent } from 'vue'
import ElementPlus, { ElMessage } from 'element-plus'
import * as tasksApi from '@/api/tasks'
import { ApiError } from '@/api/http'
import type { TaskItem } from '@/api/types'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import PoolView from '../PoolView.vue'
import TaskTable from '@/components/TaskTable.vue'

vi.mock('@/api/tasks', () => ({
  listTasks: vi.fn(),
  claimTask: vi.fn(),
  assignTask: vi.fn(),
  batchAssign: vi.fn(),
  listGroups: vi.fn(),
  listDoctors: vi.fn(),
}))
vi.mock('@/api/public', () => ({ listPublicInstitutions: vi.fn().mockResolvedValue([]) }))

const Dummy = defineComponent({ render: () => null })

function task(id: number, extra: Partial<TaskItem> = {}): TaskItem {
  return {
    id,
    case_id: 100 + id,
    case_no: `RD00${id}`,
    task_name: 'draft_report',
    title: '书写初步报告',
    lane_role: 'report_l1',
    assignee: null,
    in_pool: true,
    group: null,
    emergency: false,
    patient_name: `患者${id}`,
    modality: 'CT',
    body_part: '头部',
    requesting_institution: { code: 'M1', name: '县医院' },
    created_at: '2025-01-01T00:00:00Z',
    claimed_at: null,
    ...extra,
  }
}

let pinia: Pinia

async function mountPool(permissions: string[]) {
  const store = useAuthStore()
  store.user = { id: 7, username: 'doc', full_name: '李医生', permissions, menus: ['menu.pool'] } as never
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/pool', component: PoolView },
      { path: '/tasks/:id', component: Dummy },
    ],
  })
  await router.push('/pool')
  await router.isReady()
  const wrapper = mount(PoolView, {
    global: { plugins: [pinia, router, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return { wrapper, router }
}

/** Row buttons by test id, skipping Element Plus's hidden column copies. */
function rowButtons(wrapper: ReturnType<typeof mount>, testid: string) {
  return wrapper.findAll(`tr.el-table__row [data-testid="${testid}"]`)
}

describe('抢单池 PoolView', () => {
  beforeEach(() => {
    pinia = createPinia()
    setActivePinia(pinia)
    vi.mocked(tasksApi.listTasks).mockReset()
    vi.mocked(tasksApi.claimTask).mockReset()
    vi.mocked(tasksApi.listGroups).mockReset().mockResolvedValue([{ code: 'chest', name: '胸部组', members: 3 }])
    vi.mocked(tasksApi.listDoctors).mockReset().mockResolvedValue([])
    vi.mocked(tasksApi.batchAssign).mockReset()
  })

  afterEach(() => {
    document.body.innerHTML = ''
    vi.restoreAllMocks()
  })

  it('lists scope=pool with the 领取状态 filter, emergency rows marked', async () => {
    vi.mocked(tasksApi.listTasks).mockResolvedValue({
      items: [task(1, { emergency: true }), task(2)],
      total: 2,
      page: 1,
      page_size: 20,
    })
    const { wrapper } = await mountPool(['task.claim'])
    expect(tasksApi.listTasks).toHaveBeenCalledWith(expect.objectContaining({ scope: 'pool', claimed: '' }))
    const rows = wrapper.findAll('tr.el-table__row')
    expect(rows).toHaveLength(2)
    expect(rows[0].classes()).toContain('row-emergency')
    expect(rows[0].find('[data-testid="emergency-tag"]').text()).toBe('急诊')
    expect(rows[1].find('[data-testid="emergency-tag"]').exists()).toBe(false)
    expect(rowButtons(wrapper, 'pool-assign')).toHaveLength(0) // not a dispatcher
    expect(wrapper.find('[data-testid="pool-batch-assign"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('claims a task; on 409 shows the server message and refreshes the list', async () => {
    vi.mocked(tasksApi.listTasks)
      .mockResolvedValueOnce({ items: [task(1)], total: 1, page: 1, page_size: 20 })
      .mockResolvedValueOnce({
        items: [task(1, { assignee: { id: 9, full_name: '王医生' }, in_pool: false })],
        total: 1,
        page: 1,
        page_size: 20,
      })
    vi.mocked(tasksApi.claimTask).mockRejectedValue(
      new ApiError(409, 'already_claimed', '抢单失败：该任务已被他人领取'),
    )
    const error = vi.spyOn(ElMessage, 'error')
    const { wrapper } = await mountPool(['task.claim'])

    await rowButtons(wrapper, 'pool-claim')[0].trigger('click')
    await flushPromises()

    expect(tasksApi.claimTask).toHaveBeenCalledWith(1)
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ message: '抢单失败：该任务已被他人领取' }))
    expect(tasksApi.listTasks).toHaveBeenCalledTimes(2)
    // After the refresh the row shows the winner and no 抢单 button.
    expect(wrapper.find('tr.el-table__row [data-testid="task-assignee"]').text()).toBe('王医生')
    expect(rowButtons(wrapper, 'pool-claim')).toHaveLength(0)
    wrapper.unmount()
  })

  it('a successful claim shows 抢单成功 and refreshes', async () => {
    vi.mocked(tasksApi.listTasks).mockResolvedValue({ items: [task(3)], total: 1, page: 1, page_size: 20 })
    vi.mocked(tasksApi.claimTask).mockResolvedValue(task(3, { assignee: { id: 7, full_name: '李医生' } }))
    const success = vi.spyOn(ElMessage, 'success')
    const { wrapper } = await mountPool(['task.claim'])
    await rowButtons(wrapper, 'pool-claim')[0].trigger('click')
    await flushPromises()
    expect(success).toHaveBeenCalled()
    expect(tasksApi.listTasks).toHaveBeenCalledTimes(2)
    wrapper.unmount()
  })

  it('a dispatcher sees 指派 and batch-assigns selected tasks to a group', async () => {
    vi.mocked(tasksApi.listTasks).mockResolvedValue({ items: [task(1), task(2)], total: 2, page: 1, page_size: 20 })
    vi.mocked(tasksApi.batchAssign).mockResolvedValue({ assigned: 2 })
    const { wrapper } = await mountPool(['task.assign'])
    expect(rowButtons(wrapper, 'pool-assign')).toHaveLength(2)
    expect(rowButtons(wrapper, 'pool-claim')).toHaveLength(0) // no task.claim
    // Select both rows (the selection column exists only for a dispatcher).
    expect(wrapper.find('.el-table__header .el-checkbox').exists()).toBe(true)
    ;(wrapper.findComponent(TaskTable).vm as unknown as { $emit(e: string, rows: TaskItem[]): void }).$emit(
      'selection-change',
      [task(1), task(2)],
    )
    await flushPromises()
    await wrapper.find('[data-testid="pool-batch-assign"]').trigger('click')
    await flushPromises()
    // The dialog is teleported to <body>; drive its components through the component tree.
    expect(document.body.querySelector('[data-testid="batch-assign-dialog"]')).not.toBeNull()
    const byTestId = (name: string, id: string) =>
      wrapper.findAllComponents({ name }).find((c) => c.attributes('data-testid') === id)!
    byTestId('ElRadioGroup', 'batch-assign-mode').vm.$emit('update:modelValue', 'group')
    await flushPromises()
    byTestId('ElSelect', 'batch-assign-group').vm.$emit('update:modelValue', 'chest')
    await flushPromises()
    ;(document.body.querySelector('[data-testid="batch-assign-confirm"]') as HTMLElement).click()
    await flushPromises()
    expect(tasksApi.batchAssign).toHaveBeenCalledWith({ task_ids: [1, 2], group_code: 'chest' })
    wrapper.unmount()
  })
})
