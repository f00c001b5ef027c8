import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { createAppI18n } from '@/i18n'
import TatCountdown from '../TatCountdown.vue'

const start = '2026-12-08T00:00:00Z'
const due = '2026-12-08T01:00:00Z'
const at = (minutes: number) => Date.parse(start) + minutes * 60000

function render(props: { now: number; due?: string | null; done?: boolean }) {
  return mount(TatCountdown, { props: { start, due, limitMinutes: 60, ...props }, global: { plugins: [createAppI18n('zh-CN')] } })
}

describe('TatCountdown 剩余时限', () => {
  it('counts down in Chinese, turns amber at 80 % and red when overdue', () => {
    const ok = render({ now: at(10) })
    expect(ok.text()).toBe('剩 50分钟')
    expect(ok.find('[data-testid="tat-ok"]').exists()).toBe(true)
    expect(ok.attributes('title')).toContain('时限 1小时00分')
    expect(render({ now: at(50) }).find('[data-testid="tat-warning"]').text()).toBe('剩 10分钟')
    expect(render({ now: at(135) }).find('[data-testid="tat-overdue"]').text()).toBe('超时 1小时15分')
    expect(render({ now: at(-60 * 24 * 2) }).text()).toBe('剩 2天1小时')
    expect(render({ now: at(-60 * 23) }).text()).toBe('剩 1天')
  })

  it('shows a dash for a finished case or one without a due time', () => {
    expect(render({ now: at(10), done: true }).text()).toBe('—')
    expect(render({ now: at(10), due: null }).text()).toBe('—')
  })
})
