/**
 * Per-user settings in the SPA (issue 14): the effective values are loaded once per user
 * (GET /api/me/settings), `useSetting(key)` returns a reactive value, and writes are saved
 * debounced per key (PUT /api/me/settings/<key>). The server validates every value against its
 * key's schema; a refused value is reported and the server's value comes back.
 */
import { computed, reactive, ref, type WritableComputedRef } from 'vue'
import { deleteMySetting, getMySettings, putMySetting, type SettingSource } from '@/api/settings'
import { useAuthStore } from '@/stores/auth'
import { showError } from '@/utils/errors'

export const SAVE_DELAY_MS = 400

const values = reactive<Record<string, unknown>>({})
const sources = reactive<Record<string, SettingSource>>({})
const loaded = ref(false)
let loadedFor: number | null = null
let loading: Promise<void> | null = null
const timers = new Map<string, ReturnType<typeof setTimeout>>()

function currentUserId(): number | null {
  try {
    return useAuthStore().user?.id ?? null
  } catch {
    return null // no Pinia (a unit test without a store): settings stay at their defaults
  }
}

function forget(): void {
  for (const k of Object.keys(values)) delete values[k]
  for (const k of Object.keys(sources)) delete sources[k]
  loaded.value = false
}

/** Load the effective values once for the logged-in user; a different user (or none) starts afresh. */
export function loadSettings(force = false): Promise<void> {
  const uid = currentUserId()
  if (uid !== loadedFor) {
    forget()
    loading = null
    loadedFor = uid
  }
  if (uid === null) return Promise.resolve()
  if (loading && !force) return loading
  loading = getMySettings()
    .then((list) => {
      if (currentUserId() !== uid) return
      for (const e of list) {
        if (!timers.has(e.key)) values[e.key] = e.value
        sources[e.key] = e.source
      }
      loaded.value = true
    })
    .catch(() => {
      // Settings are comfort, not function: without them every screen uses its own defaults.
      loaded.value = true
    })
  return loading
}

async function save(key: string): Promise<void> {
  timers.delete(key)
  try {
    const res = await putMySetting(key, values[key])
    sources[key] = res.source
  } catch (e) {
    showError(e)
    void loadSettings(true)
  }
}

/** Save every pending change now (e.g. before the page goes away). */
export async function flushSettings(): Promise<void> {
  const keys = [...timers.keys()]
  for (const k of keys) clearTimeout(timers.get(k)!)
  await Promise.all(keys.map(save))
}

/** Drop the user's own value of `key`: the role, institution or built-in default applies again. */
export async function resetSetting(key: string): Promise<void> {
  const t = timers.get(key)
  if (t) clearTimeout(t)
  timers.delete(key)
  try {
    const res = await deleteMySetting(key)
    values[key] = res.value
    sources[key] = res.source
  } catch (e) {
    showError(e)
  }
}

export function settingSource(key: string): SettingSource | undefined {
  return sources[key]
}

export const settingsLoaded = computed(() => loaded.value)

/**
 * A reactive setting. Reading gives the effective value (or `fallback` until loaded / when unset);
 * assigning stores it locally at once and saves it after SAVE_DELAY_MS of quiet.
 */
export function useSetting<T>(key: string, fallback: T): WritableComputedRef<T> {
  void loadSettings()
  return computed<T>({
    get: () => (key in values && values[key] !== undefined ? (values[key] as T) : fallback),
    set: (v: T) => {
      values[key] = v
      sources[key] = 'user'
      const t = timers.get(key)
      if (t) clearTimeout(t)
      timers.set(
        key,
        setTimeout(() => void save(key), SAVE_DELAY_MS),
      )
    },
  })
}

/** For tests: forget everything loaded. */
export function resetSettingsCache(): void {
  for (const t of timers.values()) clearTimeout(t)
  timers.clear()
  forget()
  loadedFor = null
  loading = null
}
