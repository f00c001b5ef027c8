import type { useAuthStore } from '@/stores/auth'
import { loadSettings, useSetting } from '@/composables/useSettings'
import { landingPath } from '@/menus'

type AuthStore = ReturnType<typeof useAuthStore>

export const LANDING_KEY = 'landing_page'

/**
 * Where the logged-in user lands: their `landing_page` setting (own, role's or institution's) when
 * it names a menu they hold, otherwise the system's choice (landingPath). `fresh` reloads the
 * settings first (right after a login, another browser may have changed them). Settings that fail
 * to load leave the system's choice. The user may be cleared while the settings load (a 401 from a
 * session ended elsewhere, or cookies dropped): the menus are read after the wait, never assumed.
 */
export async function userLandingPath(store: AuthStore, fresh = false): Promise<string> {
  if (!store.user) return landingPath(undefined)
  await loadSettings(fresh)
  return landingPath(store.user?.menus, useSetting<string | null>(LANDING_KEY, null).value)
}
