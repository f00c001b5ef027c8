/**
 * The Accept header of an image's frames (REQ: VIEW-01, UX R18; issue 16): by its stored transfer syntax, as its
 * instance metadata names it (Available Transfer Syntax UID, 0008,3002, added by telerad's metadata), and the
 * bandwidth mode's rule (frameSyntax.ts). A frame fetched alone (init.ts `beforeSend`) and a series' frames fetched
 * in bulk (bulk.ts) ask alike: on a LAN a JPEG-lossless series comes uncompressed either way.
 */
import dicomImageLoader from '@cornerstonejs/dicom-image-loader'
import { acceptFor } from './frameSyntax'

type InstanceJson = Record<string, { Value?: unknown[] } | undefined>

/** The stored transfer syntax of `imageId`'s instance, when its metadata (already loaded) names it. */
export function storedSyntaxOf(imageId: string): string | undefined {
  const meta = dicomImageLoader.wadors.metaDataManager?.get(imageId) as InstanceJson | undefined
  const stored = meta?.['00083002']?.Value?.[0]
  return typeof stored === 'string' && stored ? stored : undefined
}

/** The Accept header for `imageId`'s frames. */
export function acceptForImage(imageId: string): string {
  return acceptFor(storedSyntaxOf(imageId))
}
