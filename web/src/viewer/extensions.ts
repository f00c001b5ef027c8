/**
 * The viewer's extension point (issue 16): features that live beside the viewer core — saved measurements and key
 * images (web/src/viewer/persist), window sync (web/src/viewer/sync) — register here and get a ViewerContext once a
 * StudyViewer is ready. `setup` may return a cleanup function, called when that viewer goes away.
 */

export interface ActiveImage {
  studyUid: string
  seriesUid: string
  sopUid: string
  /** 1-based frame number within the instance. */
  frame: number
  imageId: string
}

export interface ToolbarItem {
  id: string
  /** Chinese label shown on the button. */
  label: string
  /** Tooltip (Chinese); the viewer appends the key binding when `bindingId` is given. */
  tooltip?: string
  /** Id of a keymap binding (web/src/keymap/bindings.ts) whose keys the tooltip shows. */
  bindingId?: string
  onClick(ctx: ViewerContext): void
}

export interface ViewerContext {
  studyUid: string
  institution?: string
  renderingEngineId: string
  toolGroupId: string
  toolGroupIds: string[]
  /** Ids of the viewports currently laid out (the first is the top-left). */
  viewportIds: () => string[]
  /** The image shown in the active viewport, or null while nothing is displayed. */
  getActiveImage(): ActiveImage | null
  /** Called whenever the active viewport shows another image; returns the unsubscribe function. */
  onImageChange(cb: (img: ActiveImage) => void): () => void
  /** The DOM element of a viewport (for Cornerstone calls that take an element). */
  getViewportElement(viewportId: string): HTMLDivElement | null
  /** Resolves once every image of the displayed series is decoded in the cache. */
  whenLoaded?: () => Promise<void>
}

export interface ViewerExtension {
  id: string
  setup(ctx: ViewerContext): (() => void) | void
  toolbar?: ToolbarItem[]
}

const registry = new Map<string, ViewerExtension>()

/** Register (or replace, by id) an extension; returns the function that removes it. */
export function registerViewerExtension(ext: ViewerExtension): () => void {
  registry.set(ext.id, ext)
  return () => {
    if (registry.get(ext.id) === ext) registry.delete(ext.id)
  }
}

export function viewerExtensions(): ViewerExtension[] {
  return [...registry.values()]
}

/** Run every registered extension's setup for one viewer; returns the cleanup of them all. */
export function setupExtensions(ctx: ViewerContext): () => void {
  const cleanups: (() => void)[] = []
  for (const ext of registry.values()) {
    try {
      const off = ext.setup(ctx)
      if (typeof off === 'function') cleanups.push(off)
    } catch (e) {
      console.error(`viewer extension ${ext.id} failed`, e)
    }
  }
  return () => {
    for (const off of cleanups.reverse()) {
      try {
        off()
      } catch (e) {
        console.error('viewer extension cleanup failed', e)
      }
    }
  }
}
