import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createMemoryHistory, createRouter } from 'vue-router'
import { defineComponent } from 'vue'
import ElementPlus from 'element-plus'
import * as api from '@/api/notifications'
import type { NotificationItem } from '@/api/notifications'
import { createAppI18n } from '@/i18n'
import NotificationBell from '../NotificationBell.vue'
import CriticalNotificationDialog from '../CriticalNotificationDialog.vue'

vi.mock('@/api/notifications', () => ({
  getNotificationSummary: vi.fn(),
  listNotifications: vi.fn(),
  markNotificationRead: vi.fn(),
  markAllNotificationsRead: vi.fn(),
  acknowledgeNotification: vi.fn(),
}))

const Dummy = defineComponent({ render: () => null })

function item(over: Partial<NotificationItem> = {}): NotificationItem {
  return {
    id: 1,
    kind: 'report_released',
    kind_name: '报告已发布',
    severity: 'info',
    severity_name: '提示',
    text: '远程诊断申请 RD1 的诊断报告已发布',
    link: '/cases/5',
    occurrences: 1,
    created_at: '2026-12-07T01:00:00+00:00',
    updated_at: '2026-12-07T01:00:00+00:00',
    read: false,
    read_at: null,
    needs_ack: false,
    acknowledged_at: null,
    acknowledged_by_name: null,
    ...over,
  }
}

const CRITICAL = item({
  id: 9,
  kind: 'security_alert',
  kind_name: '安全告警',
  severity: 'critical',
  severity_name: '紧急',
  text: '测试用户（成员医院一）：访问可见范围之外的对象，对象：远程诊断申请 3',
  link: null,
  needs_ack: true,
})

let wrapper: VueWrapper | null = null
let hidden = false

async function mountBell() {
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', component: Dummy },
      { path: '/cases/:id', component: Dummy },
    ],
  })
  await router.push('/')
  await router.isReady()
  wrapper = mount(NotificationBell, {
    global: { plugins: [router, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return { wrapper, router }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
  hidden = false
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden })
  vi.mocked(api.getNotificationSummary).mockReset().mockResolvedValue({ unread: 0, critical_pending: 0 })
  vi.mocked(api.listNotifications).mockReset().mockResolvedValue({ items: [], total: 0, page: 1, page_size: 20 })
  vi.mocked(api.markNotificationRead).mockReset()
  vi.mocked(api.acknowledgeNotification).mockReset()
})

afterEach(() => {
  wrapper?.unmount()
  wrapper = null
  document.body.innerHTML = ''
  vi.useRealTimers()
})

describe('notification bell', () => {
  it('shows the unread count and polls every 30 s, not while the tab is hidden, and at once on return', async () => {
    vi.mocked(api.getNotificationSummary).mockResolvedValue({ unread: 3, critical_pending: 0 })
    await mountBell()
    expect(document.querySelector('[data-testid="notification-badge"] .el-badge__content')?.textContent?.trim()).toBe(
      '3',
    )
    expect(api.getNotificationSummary).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(30_000)
    expect(api.getNotificationSummary).toHaveBeenCalledTimes(2)

    hidden = true
    document.dispatchEvent(new Event('visibilitychange'))
    await vi.advanceTimersByTimeAsync(120_000)
    expect(api.getNotificationSummary).toHaveBeenCalledTimes(2) // paused while hidden

    hidden = false
    document.dispatchEvent(new Event('visibilitychange'))
    await flushPromises()
    expect(api.getNotificationSummary).toHaveBeenCalledTimes(3) // refreshed on return
    window.dispatchEvent(new Event('focus'))
    await flushPromises()
    expect(api.getNotificationSummary).toHaveBeenCalledTimes(4)
  })

  it('lists notifications with Chinese names, marks one read and opens its link', async () => {
    vi.mocked(api.getNotificationSummary).mockResolvedValue({ unread: 1, critical_pending: 0 })
    vi.mocked(api.listNotifications).mockResolvedValue({ items: [item()], total: 1, page: 1, page_size: 50 })
    vi.mocked(api.markNotificationRead).mockResolvedValue(item({ read: true }))
    const { router } = await mountBell()
    await wrapper!.get('[data-testid="notification-bell"]').trigger('click')
    await flushPromises()
    const rows = document.querySelectorAll('[data-testid="notification-item"]')
    expect(rows).toHaveLength(1)
    const text = rows[0].textContent ?? ''
    expect(text).toContain('报告已发布')
    expect(text).toContain('提示')
    expect(text).not.toContain('report_released')
    expect(text).not.toContain('info')
    ;(rows[0] as HTMLElement).click()
    await flushPromises()
    expect(api.markNotificationRead).toHaveBeenCalledWith(1)
    expect(router.currentRoute.value.fullPath).toBe('/cases/5')
  })

  it('pops up a pending critical notification that only 确认已知晓 closes', async () => {
    vi.mocked(api.getNotificationSummary).mockResolvedValue({ unread: 1, critical_pending: 1 })
    vi.mocked(api.listNotifications).mockResolvedValue({ items: [CRITICAL], total: 1, page: 1, page_size: 20 })
    vi.mocked(api.acknowledgeNotification).mockResolvedValue({ ...CRITICAL, needs_ack: false, read: true })
    await mountBell()
    expect(api.listNotifications).toHaveBeenCalledWith({ critical_pending: true, page_size: 20 })
    const dialog = () => document.querySelector('[data-testid="critical-notification-dialog"]') as HTMLElement | null
    expect(dialog()?.textContent).toContain('安全告警')
    expect(dialog()?.textContent).toContain('访问可见范围之外的对象')
    expect(dialog()?.querySelector('.el-dialog__headerbtn')).toBeNull() // no ×

    document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', code: 'Escape' }))
    ;(document.querySelector('.el-overlay') as HTMLElement | null)?.click()
    await flushPromises()
    expect(dialog()?.textContent).toContain('安全告警') // still there

    vi.mocked(api.getNotificationSummary).mockResolvedValue({ unread: 0, critical_pending: 0 })
    ;(document.querySelector('[data-testid="critical-acknowledge"]') as HTMLElement).click()
    await flushPromises()
    expect(api.acknowledgeNotification).toHaveBeenCalledWith(9)
    expect(wrapper!.findComponent(CriticalNotificationDialog).props('item')).toBeNull()
  })
})

describe('critical notification dialog', () => {
  it('shows the kind name, the repeat count and the button, and emits the acknowledgement', async () => {
    const w = mount(CriticalNotificationDialog, {
      props: { item: { ...CRITICAL, occurrences: 3 }, remaining: 2 },
      global: { plugins: [createAppI18n('zh-CN'), ElementPlus] },
      attachTo: document.body,
    })
    await flushPromises()
    const text = document.body.textContent ?? ''
    expect(text).toContain('紧急通知')
    expect(text).toContain('共发生 3 次')
    expect(text).toContain('另有 1 条紧急通知待确认')
    expect(text).not.toContain('security_alert')
    ;(document.querySelector('[data-testid="critical-acknowledge"]') as HTMLElement).click()
    expect(w.emitted('acknowledge')).toEqual([[9]])
    w.unmount()
  })
})
