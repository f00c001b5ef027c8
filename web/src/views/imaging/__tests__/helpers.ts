import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import type { Component } from 'vue'
import ElementPlus from 'element-plus'
import { createAppI18n } from '@/i18n'
import { useAuthStore } from '@/stores/auth'

export const M01 = { id: 2, code: 'M01', name: '第一成员医院', kind: 'member' as const }

export async function mountAs(view: Component, permissions: string[]) {
  const pinia = createPinia()
  setActivePinia(pinia)
  useAuthStore().user = { id: 1, permissions, menus: [] } as never
  const wrapper = mount(view, {
    global: { plugins: [pinia, createAppI18n('zh-CN'), ElementPlus] },
    attachTo: document.body,
  })
  await flushPromises()
  return wrapper
}

/** Visible copies only: Element Plus renders each column slot once more inside `.hidden-columns`. */
export function visible(testid: string): HTMLElement[] {
  return Array.from(document.body.querySelectorAll<HTMLElement>(`[data-testid="${testid}"]`)).filter(
    (el) => !el.closest('.hidden-columns'),
  )
}

export function input(testid: string): HTMLInputElement {
  const el = document.body.querySelector<HTMLElement>(`[data-testid="${testid}"]`)!
  return (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' ? el : el.querySelector('input, textarea')) as HTMLInputElement
}

export async function type(testid: string, value: string): Promise<void> {
  const el = input(testid)
  el.value = value
  el.dispatchEvent(new Event('input'))
  await flushPromises()
}

export async function click(el: Element | null | undefined): Promise<void> {
  ;(el as HTMLElement).click()
  await flushPromises()
}
