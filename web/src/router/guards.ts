import type { RouteLocationRaw, RouteMeta, RouteRecordNameGeneric, Router } from 'vue-router'
import type { useAuthStore } from '@/stores/auth'
import { loginLocation, stepLocation } from './authRedirect'
import { userLandingPath } from './landing'

type AuthStore = ReturnType<typeof useAuthStore>

/**
 * Decide where a navigation may go. Pure apart from loading /api/auth/me once,
 * so it can be unit-tested with a fake store.
 */
/** The parts of a route location the guard looks at. */
export interface GuardTarget {
  name?: RouteRecordNameGeneric | null
  fullPath: string
  meta: RouteMeta
}

export async function resolveNavigation(
  to: GuardTarget,
  store: AuthStore,
): Promise<true | RouteLocationRaw> {
  if (!store.loaded) await store.fetchMe()

  if (to.meta.public) {
    // A logged-in user has no business on the plain login page.
    if (to.name === 'login' && store.isLoggedIn) return userLandingPath(store)
    return true
  }

  if (!store.user || store.user.state !== 'active') {
    const state = store.user?.state ?? store.pending?.state
    if (state === 'mfa_required' || state === 'password_change_required') {
      return stepLocation(state, to.fullPath)
    }
    return loginLocation(to.fullPath)
  }

  if (to.name === 'root') return userLandingPath(store)

  const menu = to.meta.menu
  const anyMenu = to.meta.anyMenu
  const perm = to.meta.perm
  if (
    (menu && !store.hasMenu(menu)) ||
    (anyMenu && !anyMenu.some((m) => store.hasMenu(m))) ||
    (perm && !store.hasPerm(perm))
  ) {
    return { name: 'forbidden', query: { from: to.fullPath }, replace: true }
  }
  return true
}

export function installGuards(router: Router, store: AuthStore, title: (key: string) => string): void {
  router.beforeEach((to) => resolveNavigation(to, store))
  router.afterEach((to) => {
    const app = title('app.title')
    document.title = to.meta.titleKey ? `${title(to.meta.titleKey)} - ${app}` : app
  })
}
