/**
 * Show one image of the open study (a key image picked from the list, or `?series=&sop=&frame=` on the viewer URL —
 * the report editor's 图像 card opens the viewer at a key image). Uses Cornerstone's stack viewports of the viewer
 * (ViewerContext.renderingEngineId); when no viewport holds the image's series yet, the series is picked in the
 * series browser as a click would (its thumbnail names the series), then the stack is moved to the image.
 */
import { getRenderingEngine, type Types } from '@cornerstonejs/core'
import { parseImageId } from '@/viewer/core/dicomweb'
import type { ViewerContext } from '@/viewer/extensions'

export interface Target {
  seriesUid: string
  sopUid: string
  frame: number
}

function find(ctx: ViewerContext, t: Target): { vp: Types.IStackViewport; index: number } | null {
  const engine = getRenderingEngine(ctx.renderingEngineId)
  if (!engine) return null
  for (const id of ctx.viewportIds()) {
    const vp = engine.getViewport(id) as Types.IStackViewport | undefined
    const ids = vp && typeof vp.getImageIds === 'function' ? vp.getImageIds() : []
    const index = ids.findIndex((imageId) => {
      const p = parseImageId(imageId)
      return !!p && p.seriesUid === t.seriesUid && p.sopUid === t.sopUid && p.frame === t.frame
    })
    if (vp && index >= 0) return { vp, index }
  }
  return null
}

function pickSeries(ctx: ViewerContext, seriesUid: string): boolean {
  const first = ctx.viewportIds().map((id) => ctx.getViewportElement(id)).find((e) => !!e)
  const root = first?.closest('[data-testid="study-viewer"]') ?? document
  const marker = `/series/${encodeURIComponent(seriesUid)}/`
  for (const img of root.querySelectorAll<HTMLImageElement>('[data-testid="viewer-series-browser"] img')) {
    if (img.getAttribute('src')?.includes(marker)) {
      img.closest<HTMLElement>('.series')?.click()
      return true
    }
  }
  return false
}

/** Move a viewport to the image; false when the image is not in the study's stacks (or did not load in time). */
export async function showImage(ctx: ViewerContext, t: Target, timeoutMs = 8000): Promise<boolean> {
  let hit = find(ctx, t)
  if (!hit) {
    if (!pickSeries(ctx, t.seriesUid)) return false
    const until = Date.now() + timeoutMs
    while (!hit && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100))
      hit = find(ctx, t)
    }
    if (!hit) return false
  }
  await hit.vp.setImageIdIndex(hit.index)
  return true
}

/** The image the viewer URL asks for (`?series=&sop=&frame=`), if any. */
export function targetFromUrl(search: string): Target | null {
  const q = new URLSearchParams(search)
  const seriesUid = q.get('series')
  const sopUid = q.get('sop')
  if (!seriesUid || !sopUid) return null
  const frame = Number(q.get('frame') ?? '1')
  return { seriesUid, sopUid, frame: Number.isInteger(frame) && frame > 0 ? frame : 1 }
}
