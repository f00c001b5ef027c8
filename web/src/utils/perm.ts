import type { App, Directive } from 'vue'
import { useAuthStore } from '@/stores/auth'

/** True when the current user holds the function permission `code`. */
export function hasPerm(code: string): boolean {
  return useAuthStore().hasPerm(code)
}

/** True when the user holds at least one of the permissions. */
export function hasAnyPerm(codes: string[]): boolean {
  const store = useAuthStore()
  return codes.some((c) => store.hasPerm(c))
}

/**
 * `v-perm="'user.manage'"` or `v-perm="['a', 'b']"` (any of): removes the
 * element when the permission is missing. Prefer `v-if="hasPerm(...)"` where
 * reactivity matters; permissions only change on re-login.
 */
export const vPerm: Directive<HTMLElement, string | string[]> = {
  mounted(el, binding) {
    const codes = Array.isArray(binding.value) ? binding.value : [binding.value]
    if (!hasAnyPerm(codes)) el.parentNode?.removeChild(el)
  },
}

export function installPerm(app: App): void {
  app.directive('perm', vPerm)
  app.config.globalProperties.$hasPerm = hasPerm
}

declare module 'vue' {
  interface ComponentCustomProperties {
    $hasPerm: typeof hasPerm
  }
}
