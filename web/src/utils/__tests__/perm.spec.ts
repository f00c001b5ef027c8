import { beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { createPinia, setActivePinia, type Pinia } from 'pinia'
import { defineComponent } from 'vue'
import type { Me } from '@/api/types'
import { useAuthStore } from '@/stores/auth'
import { hasAnyPerm, hasPerm, vPerm } from '../perm'

let pinia: Pinia

function login(permissions: string[]): void {
  useAuthStore().user = { permissions, menus: [], roles: [], state: 'active' } as unknown as Me
}

const Buttons = defineComponent({
  directives: { perm: vPerm },
  template: `
    <div>
      <button v-perm="'user.manage'" class="manage">新建</button>
      <button v-perm="['audit.export', 'audit.read']" class="any">导出</button>
      <button v-perm="'role.manage'" class="role">删除角色</button>
    </div>`,
})

describe('permission helpers', () => {
  beforeEach(() => {
    pinia = createPinia()
    setActivePinia(pinia)
  })

  it('hasPerm checks the function permissions from /api/auth/me', () => {
    login(['user.read', 'user.manage'])
    expect(hasPerm('user.manage')).toBe(true)
    expect(hasPerm('role.manage')).toBe(false)
    expect(hasAnyPerm(['role.manage', 'user.read'])).toBe(true)
    expect(hasAnyPerm(['role.manage'])).toBe(false)
  })

  it('nobody has permissions when logged out', () => {
    expect(hasPerm('user.read')).toBe(false)
  })

  it('v-perm removes elements whose permission is missing', () => {
    login(['user.manage', 'audit.read'])
    const wrapper = mount(Buttons, { global: { plugins: [pinia] } })
    expect(wrapper.find('.manage').exists()).toBe(true)
    expect(wrapper.find('.any').exists()).toBe(true)
    expect(wrapper.find('.role').exists()).toBe(false)
  })
})
