import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import * as authApi from '@/api/auth'
import { isApiError, setCsrfToken } from '@/api/http'
import type { AuthState, Me, PasswordChangeReason } from '@/api/types'
import { buildMenus } from '@/menus'
import { isAdminRoleCode } from '@/utils/password'

const PENDING_KEY = 'telerad.pending'

interface PendingInfo {
  state: Exclude<AuthState, 'active'>
  reason?: PasswordChangeReason
  mfaEnrolled?: boolean
  username?: string
}

function loadPending(): PendingInfo | null {
  try {
    const raw = sessionStorage.getItem(PENDING_KEY)
    return raw ? (JSON.parse(raw) as PendingInfo) : null
  } catch {
    return null
  }
}

export const useAuthStore = defineStore('auth', () => {
  const user = ref<Me | null>(null)
  /** Whether /api/auth/me has been asked at least once since page load. */
  const loaded = ref(false)
  /** Half-finished login (MFA or password change still required). */
  const pending = ref<PendingInfo | null>(loadPending())

  const isLoggedIn = computed(() => !!user.value && user.value.state === 'active')
  const permissions = computed(() => new Set(user.value?.permissions ?? []))
  const menuCodes = computed(() => new Set(user.value?.menus ?? []))
  const menus = computed(() => buildMenus(user.value?.menus, user.value?.permissions))
  const isAdmin = computed(() => (user.value?.roles ?? []).some((r) => isAdminRoleCode(r.code)))

  function setPending(p: PendingInfo | null): void {
    pending.value = p
    try {
      if (p) sessionStorage.setItem(PENDING_KEY, JSON.stringify(p))
      else sessionStorage.removeItem(PENDING_KEY)
    } catch {
      // storage unavailable: keep in memory only
    }
  }

  function hasPerm(code: string): boolean {
    return permissions.value.has(code)
  }

  function hasMenu(code: string): boolean {
    return menuCodes.value.has(code)
  }

  /**
   * Load the current user. Resolves to the auth state, or null when not logged
   * in. A 403 step code (mfa_required / password_change_required) becomes the
   * pending state.
   */
  async function fetchMe(): Promise<AuthState | null> {
    try {
      const me = await authApi.fetchMe()
      user.value = me
      loaded.value = true
      if (me.state === 'active') {
        setPending(null)
      } else {
        setPending({
          ...(pending.value || {}),
          state: me.state,
          mfaEnrolled: me.mfa_enrolled ?? pending.value?.mfaEnrolled,
          username: me.username,
        })
      }
      return me.state
    } catch (e) {
      loaded.value = true
      user.value = null
      if (isApiError(e) && e.status === 403 && (e.code === 'mfa_required' || e.code === 'password_change_required')) {
        setPending({ ...(pending.value || {}), state: e.code })
        return e.code
      }
      if (isApiError(e) && e.status === 401) setPending(null)
      return null
    }
  }

  function clear(): void {
    user.value = null
    setPending(null)
    setCsrfToken(null)
  }

  async function logout(): Promise<void> {
    try {
      await authApi.logout()
    } catch {
      // session may already be gone; the local state is cleared regardless
    } finally {
      clear()
      loaded.value = true
    }
  }

  return {
    user,
    loaded,
    pending,
    isLoggedIn,
    permissions,
    menus,
    isAdmin,
    hasPerm,
    hasMenu,
    setPending,
    fetchMe,
    clear,
    logout,
  }
})
