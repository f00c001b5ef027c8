// REQ: RPT-03, RPT-07 (issue 17; UX R5, R6, R7): markers, choices, phrases and the template panel in the report
// editor — the composable as TaskFormView uses it, on the real generated form.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter, RouterView } from 'vue-router'
import { defineComponent, h } from 'vue'
import ElementPlus from 'element-plus'
import * as tasksApi from '@/api/tasks'
import * as reportsApi from '@/api/reports'
import * as templatesApi from '@/api/templates'
import type { Report, TaskForm } from '@/api/types'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import { fieldTextarea } from '../useTemplateEditing'
import TaskFormView from '@/views/tasks/TaskFormView.vue'
import { draftSchema, draftUi } from '../../../tests/unit/fixtures/forms'

vi.mock('@/api/cases', () => ({ getCase: vi.fn().mockRejectedValue(new Error('not needed here')) })) // the banner's detail
vi.mock('@/api/tasks', () => ({ getTaskForm: vi.fn(), completeTask: vi.fn() }))
vi.mock('@/api/reports', () => ({
  lockReport: vi.fn(),
  unlockReport: vi.fn(),
  unlockReportOnUnload: vi.fn(),
  saveDraft: vi.fn(),
  listRevisions: vi.fn(),
}))
vi.mock('@/api/templates', async (orig) => ({
  ...(await orig<typeof import('@/api/templates')>()),
  getTemplateTree: vi.fn(),
  listTemplates: vi.fn(),
  getTemplate: vi.fn(),
  applyTemplate: vi.fn(),
  markTemplateUsed: vi.fn(),
  listPhrases: vi.fn(),
}))
vi.mock('@/api/settings', () => ({ getMySettings: vi.fn().mockResolvedValue([]), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))

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

function taskForm(data: Record<string, unknown>): TaskForm {
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
      emergency: false,
      patient_name: '张三',
      modality: 'CT',
      body_part: '胸部',
      requesting_institution: { code: 'M1', name: '县医院' },
      created_at: '2025-01-01T00:00:00Z',
      claimed_at: '2025-01-01T00:05:00Z',
    },
    schema: draftSchema,
    ui_schema: draftUi,
    data,
    report: REPORT,
  }
}

const PHRASES: templatesApi.Phrase[] = [
  { id: 1, text: '建议随访复查。', scope: 'private', shortcut: 1, pinyin: 'jysffc' },
  { id: 2, text: '请结合临床。', scope: 'shared', shortcut: null, pinyin: 'qjhlc' },
]

let wrapper: VueWrapper

async function mountPage(data: Record<string, unknown>) {
  vi.mocked(tasksApi.getTaskForm).mockResolvedValue(taskForm(data))
  const Dummy = defineComponent({ render: () => null })
  const router = createRouter({
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
  wrapper = mount(App, {
    global: { plugins: [createAppI18n('zh-CN'), ElementPlus, router] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

const ta = (f: string) => fieldTextarea(document.body, f)!

/** Press a key in the focused element, as the browser would: the event bubbles to the keymap's window listener. */
function press(el: HTMLElement, key: string, opts: KeyboardEventInit = {}): KeyboardEvent {
  const e = new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true, ...opts })
  el.dispatchEvent(e)
  return e
}

function select(el: HTMLTextAreaElement, start: number, end = start): void {
  el.focus()
  el.setSelectionRange(start, end)
}

describe('useTemplateEditing in the report editor', () => {
  beforeEach(() => {
    const pinia = createPinia()
    setActivePinia(pinia)
    useAuthStore().user = { id: 7, username: 'doc', full_name: '李医生', permissions: [], menus: [] } as never
    vi.mocked(tasksApi.completeTask).mockReset().mockResolvedValue({ case: {} as never })
    vi.mocked(reportsApi.lockReport).mockReset().mockResolvedValue({ lock_token: 41, expires_at: '2025-01-01T01:00:00Z' })
    vi.mocked(reportsApi.unlockReport).mockReset().mockResolvedValue(undefined)
    vi.mocked(reportsApi.listRevisions).mockReset().mockResolvedValue([])
    vi.mocked(templatesApi.getTemplateTree).mockReset().mockResolvedValue([])
    vi.mocked(templatesApi.listTemplates).mockReset().mockResolvedValue({
      items: [
        {
          id: 5, name: '胸部CT正常', kind: 'single', scope: 'public', category: 'normal', modality: 'CT', body_part: '胸部',
          favorite: false, owner: null, institution: null, updated_at: '2026-12-08T00:00:00Z', version: 1,
        },
      ],
      total: 1,
      page: 1,
      page_size: 50,
    })
    vi.mocked(templatesApi.getTemplate).mockReset().mockRejectedValue(new Error('no preview in this spec'))
    vi.mocked(templatesApi.applyTemplate).mockReset()
    vi.mocked(templatesApi.markTemplateUsed).mockReset().mockResolvedValue(undefined)
    vi.mocked(templatesApi.listPhrases).mockReset().mockImplementation(async (q = '') =>
      PHRASES.filter((p) => !q || p.pinyin.startsWith(q) || p.text.includes(q)),
    )
  })

  afterEach(() => {
    wrapper?.unmount()
    document.body.innerHTML = ''
  })

  it('finds the real textareas of the generated form', async () => {
    await mountPage({ findings: 'a', impression: 'b', positive: '阴性' })
    for (const f of ['findings', 'impression', 'recommendation']) expect(ta(f)).toBeInstanceOf(HTMLTextAreaElement)
    expect(ta('findings').value).toBe('a')
  })

  it('Tab / Shift+Tab select the next / previous marker across fields; with none left Tab moves on', async () => {
    await mountPage({ findings: '肺野[清晰/模糊]，结节约___mm', impression: '无', recommendation: '建议___个月复查' })
    select(ta('findings'), 0)
    let e = press(ta('findings'), 'Tab')
    expect(e.defaultPrevented).toBe(true)
    expect([ta('findings').selectionStart, ta('findings').selectionEnd]).toEqual([2, 9])
    press(ta('findings'), 'Tab')
    expect([ta('findings').selectionStart, ta('findings').selectionEnd]).toEqual([13, 16])
    press(ta('findings'), 'Tab')
    expect(document.activeElement).toBe(ta('recommendation'))
    expect([ta('recommendation').selectionStart, ta('recommendation').selectionEnd]).toEqual([2, 5])
    press(ta('recommendation'), 'Tab', { shiftKey: true })
    expect(document.activeElement).toBe(ta('findings'))
    expect([ta('findings').selectionStart, ta('findings').selectionEnd]).toEqual([13, 16])

    // nothing to tab to: the browser's own Tab
    wrapper.unmount()
    document.body.innerHTML = ''
    await mountPage({ findings: '两肺清晰', impression: '未见异常', positive: '阴性' })
    select(ta('findings'), 0)
    e = press(ta('findings'), 'Tab')
    expect(e.defaultPrevented).toBe(false)
  })

  it('keys 1..9 pick an option of the selected choice; elsewhere they type', async () => {
    await mountPage({ findings: '肺野[清晰/模糊]', impression: '1. ___', positive: '阴性' })
    select(ta('findings'), 0)
    press(ta('findings'), 'Tab')
    expect(press(ta('findings'), '3').defaultPrevented).toBe(false) // no third option: typed as usual
    const e = press(ta('findings'), '2')
    expect(e.defaultPrevented).toBe(true)
    await flushPromises()
    expect(ta('findings').value).toBe('肺野模糊')
    expect(ta('findings').selectionStart).toBe(4)
    select(ta('findings'), 1)
    expect(press(ta('findings'), '1').defaultPrevented).toBe(false)
  })

  it('submit is blocked while markers remain and selects the first; once filled it goes through', async () => {
    await mountPage({ findings: '结节约___mm', impression: '1. [良性/恶性]可能', positive: '阳性' })
    await wrapper.get('[data-testid="task-submit"]').trigger('click')
    await flushPromises()
    expect(tasksApi.completeTask).not.toHaveBeenCalled()
    expect(document.activeElement).toBe(ta('findings'))
    expect([ta('findings').selectionStart, ta('findings').selectionEnd]).toEqual([3, 6])
    await wrapper.get('textarea[data-testid="form-input-findings"]').setValue('结节约8mm')
    select(ta('impression'), 0)
    press(ta('impression'), 'Tab')
    press(ta('impression'), '1')
    await flushPromises()
    await wrapper.get('[data-testid="task-submit"]').trigger('click')
    await flushPromises()
    expect(tasksApi.completeTask).toHaveBeenCalledWith('12', {
      data: { findings: '结节约8mm', impression: '1. 良性可能', positive: '阳性' },
      lock_token: 41,
    })
  })

  it('Ctrl+1 inserts the phrase with that shortcut at the caret', async () => {
    await mountPage({ findings: '所见', impression: '诊断', positive: '阴性' })
    select(ta('impression'), 2)
    const e = press(ta('impression'), '1', { ctrlKey: true })
    expect(e.defaultPrevented).toBe(true)
    await flushPromises()
    expect(ta('impression').value).toBe('诊断建议随访复查。')
  })

  it('`/` at a line start opens the phrase search; Enter inserts the chosen phrase, Esc goes back without one', async () => {
    await mountPage({ findings: '所见\n', impression: '1/2', positive: '阴性' })
    select(ta('impression'), 1)
    expect(press(ta('impression'), '/').defaultPrevented).toBe(false) // inside a word: a plain slash
    select(ta('findings'), 3)
    expect(press(ta('findings'), '/').defaultPrevented).toBe(true)
    await flushPromises()
    const input = document.querySelector<HTMLInputElement>('input[data-testid="phrase-search-input"]')!
    expect(document.activeElement).toBe(input)
    input.value = 'qj'
    input.dispatchEvent(new Event('input'))
    await new Promise((r) => setTimeout(r, 200))
    await flushPromises()
    expect(templatesApi.listPhrases).toHaveBeenLastCalledWith('qj')
    input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }))
    await flushPromises()
    expect(ta('findings').value).toBe('所见\n请结合临床。')

    select(ta('findings'), 0)
    press(ta('findings'), '/')
    await flushPromises()
    const again = document.querySelector<HTMLInputElement>('input[data-testid="phrase-search-input"]')!
    expect(document.activeElement).toBe(again)
    again.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true, cancelable: true }))
    await flushPromises()
    await flushPromises()
    expect(ta('findings').value).toBe('所见\n请结合临床。')
    expect(document.activeElement).toBe(ta('findings'))
    expect(document.querySelector('[data-testid="phrase-search"]')).toBeNull()
  })

  it('the panel inserts at the caret of the last focused field, and Tab then finds the inserted markers', async () => {
    vi.mocked(templatesApi.applyTemplate).mockResolvedValue({
      findings: '既往：两肺[清晰/模糊]',
      impression: '1. ___',
      recommendation: '',
      positive: '阴性',
    })
    await mountPage({ findings: '既往：', impression: '', positive: '阳性' })
    select(ta('findings'), 3)
    ta('findings').dispatchEvent(new FocusEvent('focusout', { bubbles: true }))
    await wrapper.get('[data-testid="template-insert"]').trigger('click')
    await flushPromises()
    expect(templatesApi.applyTemplate).toHaveBeenCalledWith(
      5,
      'insert',
      { findings: '既往：', impression: '', recommendation: '', positive: '阳性' },
      { field: 'findings', offset: 3 },
    )
    await flushPromises()
    expect(ta('findings').value).toBe('既往：两肺[清晰/模糊]')
    expect(ta('impression').value).toBe('1. ___')
    expect(document.activeElement).toBe(ta('findings'))
    press(ta('findings'), 'Tab')
    expect([ta('findings').selectionStart, ta('findings').selectionEnd]).toEqual([5, 12])
    expect(templatesApi.markTemplateUsed).toHaveBeenCalledWith(5)
  })
})
