import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import * as settingsApi from '@/api/settings'
import { useAuthStore } from '@/stores/auth'
import { loadSettings, resetSettingsCache, SAVE_DELAY_MS, useSetting } from '../useSettings'
import { arrangeColumns, useListColumns } from '../useListColumns'

vi.mock('@/api/settings', () => ({ getMySettings: vi.fn(), putMySetting: vi.fn(), deleteMySetting: vi.fn() }))

const DEFS = [
  { id: 'a', labelKey: 'x.a' },
  { id: 'b', labelKey: 'x.b' },
  { id: 'c', labelKey: 'x.c' },
]

describe('useSetting', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    useAuthStore().user = { id: 7 } as never
    resetSettingsCache()
    vi.mocked(settingsApi.getMySettings).mockReset().mockResolvedValue([
      { key: 'report_editor.font_mode', value: 'large', source: 'institution' },
      { key: 'list.tasks.columns', value: [], source: 'builtin' },
    ])
    vi.mocked(settingsApi.putMySetting).mockReset().mockImplementation(async (key, value) => ({ key, value, source: 'user' }))
    vi.mocked(settingsApi.deleteMySetting).mockReset()
  })
  afterEach(() => vi.useRealTimers())

  it('loads the effective values once and saves a change debounced', async () => {
    vi.useFakeTimers()
    const a = useSetting('report_editor.font_mode', 'standard')
    const b = useSetting('report_editor.font_mode', 'standard')
    expect(a.value).toBe('standard') // the fallback until loaded
    await flushPromises()
    expect(settingsApi.getMySettings).toHaveBeenCalledTimes(1)
    expect(a.value).toBe('large')
    a.value = 'extra_large'
    a.value = 'standard'
    expect(b.value).toBe('standard')
    vi.advanceTimersByTime(SAVE_DELAY_MS - 1)
    expect(settingsApi.putMySetting).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1)
    await flushPromises()
    expect(settingsApi.putMySetting).toHaveBeenCalledTimes(1)
    expect(settingsApi.putMySetting).toHaveBeenCalledWith('report_editor.font_mode', 'standard')
  })

  it('another user starts afresh', async () => {
    const a = useSetting('report_editor.font_mode', 'standard')
    await flushPromises()
    expect(a.value).toBe('large')
    useAuthStore().user = { id: 8 } as never
    vi.mocked(settingsApi.getMySettings).mockResolvedValue([])
    await loadSettings()
    expect(a.value).toBe('standard')
    expect(settingsApi.getMySettings).toHaveBeenCalledTimes(2)
  })

  it('list columns: saved order first, new columns appended, hide/move/width stored as one value', async () => {
    expect(arrangeColumns(DEFS, [{ id: 'c', shown: false }, { id: 'gone', shown: true }, { id: 'a', shown: true, width: 99 }]))
      .toEqual([
        { id: 'c', labelKey: 'x.c', shown: false, savedWidth: null },
        { id: 'a', labelKey: 'x.a', shown: true, savedWidth: 99 },
        { id: 'b', labelKey: 'x.b', shown: true, savedWidth: null },
      ])
    vi.useFakeTimers()
    const cols = useListColumns('tasks', DEFS)
    await flushPromises()
    cols.setShown('b', false)
    cols.move('c', -1)
    cols.setWidth('a', 12)
    expect(cols.visible.value.map((c) => c.id)).toEqual(['a', 'c'])
    cols.setShown('a', false)
    cols.setShown('c', false) // the last shown column stays
    expect(cols.visible.value.map((c) => c.id)).toEqual(['c'])
    vi.advanceTimersByTime(SAVE_DELAY_MS)
    await flushPromises()
    expect(settingsApi.putMySetting).toHaveBeenCalledTimes(1)
    expect(settingsApi.putMySetting).toHaveBeenCalledWith('list.tasks.columns', [
      { id: 'a', shown: false, width: 40 },
      { id: 'c', shown: true, width: null },
      { id: 'b', shown: false, width: null },
    ])
  })
})
