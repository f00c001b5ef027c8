/**
 * The opening images, asked for before the viewports exist (issue 16, UX R18: the first diagnostic image fast).
 *
 * Once the opening layout is known (hanging.ts) and the metadata of its series is in, the image each viewport opens
 * at is fetched and decoded (the loader's web workers) while the main thread creates the rendering engine, the tool
 * group and the viewports' elements: `setStack` then finds the image in Cornerstone's cache (or on its way) instead
 * of asking for it only then. A 2-image DR study asks both at once.
 */
import { Enums, cache, imageLoader } from '@cornerstonejs/core'
import type { HangingCell } from './hanging'

/** The image ids the cells open at, in cell order, once each (a series whose metadata is not in yet: none). */
export function openingImageIds(cells: HangingCell[], imageIdsOf: (seriesUid: string) => string[] | undefined): string[] {
  const out: string[] = []
  for (const c of cells) {
    const ids = imageIdsOf(c.seriesUid)
    const id = ids?.[Math.min(Math.max(0, c.index), ids.length - 1)]
    if (id && !out.includes(id)) out.push(id)
  }
  return out
}

/** Start loading these images into the cache (an image already loaded or on its way is left alone). Resolves once
 * each request went out: the loader's request pool sends one per task, so the caller's next long stretch of work
 * (creating the engine and the viewports) does not hold them back. */
export async function loadOpeningImages(imageIds: string[]): Promise<void> {
  for (const id of imageIds) {
    if (cache.getImageLoadObject(id)) continue
    // the viewport's own request kind and priority: these are the images on screen first
    imageLoader
      .loadAndCacheImage(id, { priority: -5, requestType: Enums.RequestType.Interaction })
      .catch(() => undefined) // the viewport asks again and reports
    await new Promise<void>((resolve) => setTimeout(resolve, 0))
  }
}
