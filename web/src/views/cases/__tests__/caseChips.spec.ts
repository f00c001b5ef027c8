// 我的诊断记录's status chips, date shortcuts and filters (issue 17; REQ: REC-02, REC-03, REC-07; UX.md R2).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import ElementPlus from 'element-plus'
import * as casesApi from '@/api/cases'
import * as settingsApi from '@/api/settings'
import { resetSettingsCache } from '@/composables/useSettings'
import type { CaseCounts } from '@/api/types'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'
import { CHIP_STATUSES, EXAM_STATUS_COLORS } from '@/utils/examStatus'
import { dateWindow, platformDay } from '@/utils/dateWindow'
import CasesView from '../CasesView.vue'

vi.mock('@/api/cases', () => ({ listCases: vi.fn(), caseCounts: vi.fn() }))
vi.mock('@/api/settings', () => ({ getMySettings: vi.fn(), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))

// Tuesday 2026-12-08 01:30 in Shanghai is still Monday 12-07 in UTC: the platform's day decides.
const NOW = new Date('2026-12-07T17:30:00Z')

function countsOf(total: number, over: Partial<CaseCounts['counts']> = {}): CaseCounts {
  const counts = Object.fromEntries([...CHIP_STATUSES, 'in_progress', 'emergency', 'overdue'].map((k) => [k, 0]))
  return {
    window: { date_from: '2026-12-02', date_to: '2026-12-08' },
    counts: { ...counts, total, ...over } as CaseCounts['counts'],
    institutions: [
      { id: 2, name: '县医院', count: 4 },
      { id: 3, name: '镇卫生院', count: 2 },
    ],
  }
}

async function mountView(): Promise<VueWrapper> {
  useAuthStore().user = { id: 7, username: 'u', full_name: '用户', permissions: [], menus: ['menu.cases'] } as never
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/cases', component: CasesView }] })
  await router.push('/cases')
  await router.isReady()
  const w = mount(CasesView, {
    global: { plugins: [router, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return w
}

const chip = (w: VueWrapper, key: string) => w.get(`[data-testid="case-chip-${key}"]`)
const lastList = () => vi.mocked(casesApi.listCases).mock.calls.at(-1)![0]
const lastCounts = () => vi.mocked(casesApi.caseCounts).mock.calls.at(-1)![0]

describe('case list chips', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(NOW)
    setActivePinia(createPinia())
    resetSettingsCache()
    vi.mocked(settingsApi.getMySettings).mockReset().mockResolvedValue([])
    vi.mocked(casesApi.listCases).mockReset().mockResolvedValue({ items: [], total: 0, page: 1, page_size: 20 })
    vi.mocked(casesApi.caseCounts)
      .mockReset()
      .mockResolvedValue(countsOf(6, { registered: 1, awaiting: 2, printed: 1, emergency: 2, overdue: 1 }))
  })

  afterEach(() => {
    vi.useRealTimers()
    document.body.innerHTML = ''
  })

  it('date shortcuts are Shanghai days', () => {
    expect(platformDay(NOW)).toBe('2026-12-08')
    expect(dateWindow('today', NOW)).toEqual(['2026-12-08', '2026-12-08'])
    expect(dateWindow('yesterday', NOW)).toEqual(['2026-12-07', '2026-12-07'])
    expect(dateWindow('days3', NOW)).toEqual(['2026-12-06', '2026-12-08'])
    expect(dateWindow('days7', NOW)).toEqual(['2026-12-02', '2026-12-08'])
    expect(dateWindow('custom', NOW, ['2026-11-01', '2026-11-30'])).toEqual(['2026-11-01', '2026-11-30'])
    expect(dateWindow('custom', NOW, null)).toBeNull()
    // Across a month boundary.
    expect(dateWindow('days7', new Date('2026-03-02T04:00:00Z'))).toEqual(['2026-02-24', '2026-03-02'])
  })

  it('shows UX R2 labels in order with their counts and colours, 急诊 and 已超时; 7天内 by default', async () => {
    const w = await mountView()
    const labels = w.findAll('[data-testid="case-chips"] .el-check-tag').map((c) => c.text().replace(/\s+/g, ' '))
    expect(labels).toEqual([
      '全部 6',
      '已登记 1',
      '已检查 0',
      '待诊断 2',
      '初步报告 0',
      '待审核 0',
      '审核驳回 0',
      '已审核 0',
      '已发布 0',
      '已打印 1',
      '已更正 0',
      '急诊 2',
      '已超时 1',
    ])
    for (const s of CHIP_STATUSES) {
      expect((chip(w, s).element as HTMLElement).style.getPropertyValue('--chip-color')).toBe(EXAM_STATUS_COLORS[s])
    }
    expect(chip(w, 'all').classes()).toContain('is-checked')
    // The list and the counts asked for the same 7-day window; the counts never carry the chips' own filters.
    expect(lastList()).toMatchObject({ date_from: '2026-12-02', date_to: '2026-12-08', exam_status: '', overdue: '' })
    expect(lastCounts()).toEqual({
      q: '',
      status: '',
      emergency: '',
      modality: '',
      institution_id: '',
      date_from: '2026-12-02',
      date_to: '2026-12-08',
    })
    expect(w.get('[data-testid="case-date-window"]').text()).toBe('申请日期 2026-12-02 至 2026-12-08')
    expect(w.text()).not.toMatch(/awaiting|pending_review|overdue/)
  })

  it('a chip filters the list, clicking it again clears it; 急诊 and 已超时 switch their own filter; 全部 clears all', async () => {
    const w = await mountView()
    await chip(w, 'awaiting').trigger('click')
    await flushPromises()
    expect(lastList()).toMatchObject({ exam_status: 'awaiting', page: 1 })
    expect(lastCounts()).not.toHaveProperty('exam_status')
    expect(chip(w, 'awaiting').classes()).toContain('is-checked')
    expect(chip(w, 'all').classes()).not.toContain('is-checked')
    await chip(w, 'pending_review').trigger('click')
    await flushPromises()
    expect(lastList()).toMatchObject({ exam_status: 'pending_review' })
    await chip(w, 'pending_review').trigger('click')
    await flushPromises()
    expect(lastList()).toMatchObject({ exam_status: '' })

    await chip(w, 'emergency').trigger('click')
    await chip(w, 'overdue').trigger('click')
    await flushPromises()
    expect(lastList()).toMatchObject({ emergency: 'true', overdue: 'true' })
    expect(lastCounts()).toMatchObject({ emergency: 'true' })
    await chip(w, 'awaiting').trigger('click')
    await chip(w, 'all').trigger('click')
    await flushPromises()
    expect(lastList()).toMatchObject({ exam_status: '', emergency: '', overdue: '' })
    expect(chip(w, 'all').classes()).toContain('is-checked')
  })

  it('date shortcuts and the 检查类别 / 申请医院 selects refresh list and counts together', async () => {
    const w = await mountView()
    await w.get('[data-testid="case-date-today"] input').setValue(true)
    await flushPromises()
    expect(lastList()).toMatchObject({ date_from: '2026-12-08', date_to: '2026-12-08' })
    expect(lastCounts()).toMatchObject({ date_from: '2026-12-08', date_to: '2026-12-08' })
    await w.get('[data-testid="case-date-yesterday"] input').setValue(true)
    await flushPromises()
    expect(lastCounts()).toMatchObject({ date_from: '2026-12-07', date_to: '2026-12-07' })

    const before = vi.mocked(casesApi.listCases).mock.calls.length
    await w.get('[data-testid="case-date-custom"] input').setValue(true)
    await flushPromises()
    expect(vi.mocked(casesApi.listCases).mock.calls.length).toBe(before) // nothing picked yet
    w.findComponent({ name: 'ElDatePicker' }).vm.$emit('update:modelValue', ['2026-11-01', '2026-11-30'])
    await flushPromises()
    expect(lastList()).toMatchObject({ date_from: '2026-11-01', date_to: '2026-11-30' })

    const selects = w.findAllComponents({ name: 'ElSelect' })
    const modality = selects.find((s) => s.attributes('data-testid') === 'case-modality-filter')!
    modality.vm.$emit('update:modelValue', 'CT')
    await flushPromises()
    expect(lastList()).toMatchObject({ modality: 'CT' })
    expect(lastCounts()).toMatchObject({ modality: 'CT' })
    const hospital = selects.find((s) => s.attributes('data-testid') === 'case-institution-filter')!
    expect(hospital.findAllComponents({ name: 'ElOption' }).map((o) => o.props('label'))).toEqual([
      '县医院（4）',
      '镇卫生院（2）',
    ])
    hospital.vm.$emit('update:modelValue', 3)
    await flushPromises()
    expect(lastList()).toMatchObject({ institution_id: 3 })
    expect(lastCounts()).toMatchObject({ institution_id: 3 })
  })

  it('an older counts answer arriving last never overwrites the newer one', async () => {
    const w = await mountView()
    const pending: ((c: CaseCounts) => void)[] = []
    vi.mocked(casesApi.caseCounts).mockImplementation(() => new Promise((resolve) => pending.push(resolve)))
    await w.get('[data-testid="case-date-today"] input').setValue(true)
    await flushPromises()
    await w.get('[data-testid="case-date-yesterday"] input').setValue(true)
    await flushPromises()
    expect(pending).toHaveLength(2)
    pending[1](countsOf(1, { pending_review: 1 }))
    await flushPromises()
    pending[0](countsOf(9, { awaiting: 9 }))
    await flushPromises()
    expect(chip(w, 'all').text()).toContain('1')
    expect(chip(w, 'awaiting').text().replace(/\s+/g, '')).toBe('待诊断0')
    expect(chip(w, 'pending_review').text().replace(/\s+/g, '')).toBe('待审核1')
  })
})
