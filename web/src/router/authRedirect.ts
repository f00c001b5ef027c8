import type { Router } from 'vue-router'
import { setAuthHandlers, type StepCode } from '@/api/http'
import type { useAuthStore } from '@/stores/auth'
import { isAuthPagePath, safeNext } from '@/utils/safeNext'

type AuthStore = ReturnType<typeof useAuthStore>

/** Login route location for a user who was on `currentPath`. */
export function loginLocation(currentPath: string | null | undefined) {
  const path = currentPath || '/'
  if (isAuthPagePath(path)) return { path: '/login' }
  return { path: '/login', query: { next: safeNext(path) } }
}

export function stepLocation(code: StepCode, currentPath: string | null | undefined) {
  const path = code === 'mfa_required' ? '/login/mfa' : '/login/password'
  const from = currentPath || '/'
  if (isAuthPagePath(from)) return { path }
  return { path, query: { next: safeNext(from) } }
}

/** 401 anywhere: forget the user and go to the login page. */
export function handleUnauthorized(router: Router, store: AuthStore): Promise<unknown> {
  store.clear()
  const current = router.currentRoute.value
  if (current.path === '/login') return Promise.resolve()
  return router.replace(loginLocation(current.fullPath))
}

/** 403 password_change_required / mfa_required: go to the matching step. */
export function handleStepRequired(router: Router, store: AuthStore, code: StepCode): Promise<unknown> {
  store.setPending({ ...(store.pending || {}), state: code })
  const current = router.currentRoute.value
  const target = stepLocation(code, current.fullPath)
  if (current.path === target.path) return Promise.resolve()
  return router.replace(target)
}

export function installAuthHandlers(router: Router, store: AuthStore): void {
  setAuthHandlers({
    onUnauthorized: () => void handleUnauthorized(router, store),
    onStepRequired: (code) => void handleStepRequired(router, store, code),
  })
}
