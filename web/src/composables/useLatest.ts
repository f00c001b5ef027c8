/**
 * Overlapping requests of one list: only the newest may write it. When a filter changes while an older request is
 * still in flight (a tab switched right after the page opened), the older answer can arrive last; written, it would
 * replace the rows of the new filter with those of the old one, and the list would show the wrong scope until the
 * next refresh.
 *
 * `const begin = useLatest()`; in each load: `const current = begin()`, and after every await write only while
 * `current()` holds.
 */
export function useLatest(): () => () => boolean {
  let newest = 0
  return () => {
    const mine = ++newest
    return () => mine === newest
  }
}
