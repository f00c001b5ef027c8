/**
 * Cornerstone3D annotation ⇄ the JSON the server keeps (issue 16; REQ: VIEW-08).
 *
 * Saved: the annotation's own state (`annotation.state`: uid, tool, metadata, data) as plain JSON, with the image it
 * is drawn on named by UIDs and frame rather than by its `wadors:` image id (which holds this host's origin), and its
 * statistics under one neutral key. Restored: the image id rebuilt for the viewer at hand, the statistics re-keyed
 * to it (so values show at once and the SR adapters find them; Cornerstone recomputes them when an annotation is
 * changed), never selected, locked or highlighted.
 */
import type { StoredAnnotation } from '@/api/viewer'

/** The shape of a Cornerstone3D annotation this module reads and writes (a subset of tools' Types.Annotation). */
export interface CsAnnotation {
  annotationUID?: string
  highlighted?: boolean
  invalidated?: boolean
  isLocked?: boolean
  isVisible?: boolean
  metadata: Record<string, unknown> & { toolName: string; referencedImageId?: string; FrameOfReferenceUID?: string }
  data: Record<string, unknown> & { cachedStats?: Record<string, unknown> }
}

export interface ImageRef {
  studyUid: string
  seriesUid: string
  sopUid: string
  frame: number
}

/** The neutral key of the saved statistics (Cornerstone keys them by `imageId:<image id>`). */
export const STATS_KEY = 'image'
const MAX_DEPTH = 10
/** metadata keys that name this browser's objects, rebuilt on restore */
const LOCAL_METADATA = new Set(['referencedImageId', 'referencedImageURI', 'enabledElement', 'volumeId', 'viewportId'])

/** A JSON-safe deep copy: typed arrays become arrays, non-finite numbers null, functions and cycles dropped. */
export function plain(value: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) return null
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number>, (n) => (Number.isFinite(n) ? n : null))
  }
  if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1))
  if (typeof value === 'object') {
    if (typeof Node !== 'undefined' && value instanceof Node) return null
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v === undefined || typeof v === 'function') continue
      out[k] = plain(v, depth + 1)
    }
    return out
  }
  return null
}

/** The statistics of the annotation on its own image (or the first there are). */
function ownStats(a: CsAnnotation): unknown {
  const stats = a.data.cachedStats
  if (!stats || typeof stats !== 'object') return undefined
  const own = a.metadata.referencedImageId ? stats[`imageId:${a.metadata.referencedImageId}`] : undefined
  return own ?? Object.values(stats)[0]
}

/**
 * The stored form of one annotation, or null when it is not on an image of this study (a 3D annotation, another
 * study's image) — `parse` turns an image id into UIDs and frame (web/src/viewer/core/dicomweb.ts parseImageId).
 */
export function toStored(
  a: CsAnnotation,
  studyUid: string,
  parse: (imageId: string) => ImageRef | null,
): StoredAnnotation | null {
  const imageId = a.metadata.referencedImageId
  const ref = imageId ? parse(imageId) : null
  if (!ref || ref.studyUid !== studyUid || !a.annotationUID) return null
  const metadata: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(a.metadata)) if (!LOCAL_METADATA.has(k)) metadata[k] = v
  const { cachedStats: _stats, ...rest } = a.data
  const stats = ownStats(a)
  const data = { ...rest, cachedStats: stats === undefined ? {} : { [STATS_KEY]: stats } }
  return {
    annotationUID: a.annotationUID,
    toolName: a.metadata.toolName,
    seriesUid: ref.seriesUid,
    sopUid: ref.sopUid,
    frame: ref.frame,
    metadata: plain(metadata) as Record<string, unknown>,
    data: plain(data) as Record<string, unknown>,
  }
}

/** A Cornerstone annotation from its stored form, on the image `imageIdFor` names in the viewer at hand. */
export function fromStored(
  s: StoredAnnotation,
  imageIdFor: (seriesUid: string, sopUid: string, frame: number) => string,
): CsAnnotation {
  const imageId = imageIdFor(s.seriesUid, s.sopUid, s.frame)
  const data = JSON.parse(JSON.stringify(s.data)) as CsAnnotation['data']
  const stats = (data.cachedStats ?? {})[STATS_KEY]
  data.cachedStats = stats === undefined ? {} : { [`imageId:${imageId}`]: stats }
  return {
    annotationUID: s.annotationUID,
    highlighted: false,
    invalidated: false,
    isLocked: false,
    isVisible: true,
    metadata: { ...(JSON.parse(JSON.stringify(s.metadata)) as object), toolName: s.toolName, referencedImageId: imageId },
    data,
  }
}

/** The parts of a stored annotation Cornerstone changes while merely drawing it (statistics, the active handle, the
 * text box's place while it follows the handles) — left out of the dirty check. */
function stable(a: StoredAnnotation): Record<string, unknown> {
  const { author: _a, data, ...rest } = a
  const { cachedStats: _s, handles, ...other } = data as { cachedStats?: unknown; handles?: Record<string, unknown> }
  let h: Record<string, unknown> | undefined
  if (handles) {
    const { activeHandleIndex: _i, textBox, ...points } = handles as { activeHandleIndex?: unknown; textBox?: { hasMoved?: boolean } }
    h = textBox?.hasMoved ? { ...points, textBox } : points
  }
  return { ...rest, data: { ...other, handles: h } }
}

/** A stable text of a stored list, to tell whether the marks changed since the last load or save (dirty check). */
export function fingerprint(items: StoredAnnotation[]): string {
  const norm = items
    .map(stable)
    .sort((a, b) => String(a.annotationUID).localeCompare(String(b.annotationUID)))
  return JSON.stringify(norm)
}
