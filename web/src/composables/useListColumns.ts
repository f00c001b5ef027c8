/**
 * A list's columns as the user arranged them (shown, order, width), stored in the per-user setting
 * `list.<listId>.columns` (issue 14). Saved columns come first in their saved order; columns the
 * list has gained since are appended, shown; saved ids the list no longer has are ignored.
 */
import { computed, type Ref } from 'vue'
import { resetSetting, useSetting } from './useSettings'

export interface ColumnDef {
  id: string
  /** vue-i18n key of the header. */
  labelKey: string
  width?: number
  minWidth?: number
}

export interface SavedColumn {
  id: string
  shown: boolean
  width?: number | null
}

export interface ListColumn extends ColumnDef {
  shown: boolean
  /** The user's width, if they resized it. */
  savedWidth: number | null
}

export function arrangeColumns(defs: readonly ColumnDef[], saved: readonly SavedColumn[] | null | undefined): ListColumn[] {
  const byId = new Map(defs.map((d) => [d.id, d]))
  const out: ListColumn[] = []
  const seen = new Set<string>()
  for (const s of saved ?? []) {
    const d = byId.get(s.id)
    if (!d || seen.has(s.id)) continue
    seen.add(s.id)
    out.push({ ...d, shown: s.shown !== false, savedWidth: s.width ?? null })
  }
  for (const d of defs) if (!seen.has(d.id)) out.push({ ...d, shown: true, savedWidth: null })
  return out
}

export function useListColumns(listId: string, defs: readonly ColumnDef[]) {
  const key = `list.${listId}.columns`
  return { key, ...listColumnsOver(defs, useSetting<SavedColumn[]>(key, []), () => resetSetting(key)) }
}

/**
 * The column operations over any stored arrangement `saved` (the user's setting above, or a default
 * being edited on the 默认个人设置 page); `reset` goes back to the default.
 */
export function listColumnsOver(
  defs: readonly ColumnDef[],
  saved: Ref<SavedColumn[] | null | undefined>,
  reset: () => Promise<void> | void,
) {
  const columns = computed(() => arrangeColumns(defs, saved.value))
  const visible = computed(() => columns.value.filter((c) => c.shown))

  function store(cols: ListColumn[]): void {
    saved.value = cols.map((c) => ({ id: c.id, shown: c.shown, width: c.savedWidth }))
  }

  function setShown(id: string, shown: boolean): void {
    const cols = columns.value.map((c) => (c.id === id ? { ...c, shown } : c))
    if (!cols.some((c) => c.shown)) return // at least one column stays
    store(cols)
  }

  function move(id: string, delta: number): void {
    const cols = [...columns.value]
    const i = cols.findIndex((c) => c.id === id)
    const j = i + delta
    if (i < 0 || j < 0 || j >= cols.length) return
    ;[cols[i], cols[j]] = [cols[j], cols[i]]
    store(cols)
  }

  function setWidth(id: string, width: number): void {
    const w = Math.max(40, Math.min(1200, Math.round(width)))
    store(columns.value.map((c) => (c.id === id ? { ...c, savedWidth: w } : c)))
  }

  return { columns, visible, setShown, move, setWidth, reset: async () => void (await reset()) }
}

export type ListColumns = ReturnType<typeof listColumnsOver>
