/**
 * The PET SUV factor for Cornerstone (REQ: VIEW-08): a metadata provider answering `scalingModule` with `{ suvbw }`
 * for PET images whose tags allow (./suv.ts), read from the instance metadata registered for the image id
 * (./series.ts). The dicom-image-loader scales the pixels with it; the ROI tools then show SUV.
 */
import { metaData } from '@cornerstonejs/core'
import dicomImageLoader from '@cornerstonejs/dicom-image-loader'
import type { DicomJson } from './dicomweb'
import { suvbwFactor } from './suv'

const factors = new Map<string, number | null>()
let registered = false

/** The instance's DICOM JSON registered for an image id (./series.ts), also for frame N of a multi-frame. */
function instanceOf(imageId: string): DicomJson | undefined {
  const m = dicomImageLoader.wadors.metaDataManager
  return (m.get(imageId) ?? (imageId.includes('?') ? m.get(imageId.slice(0, imageId.indexOf('?'))) : undefined)) as
    | DicomJson
    | undefined
}

/** Provide `scalingModule.suvbw` for PET images whose tags allow (once; after initCornerstone). */
export function registerSuvProvider(): void {
  if (registered) return
  registered = true
  metaData.addProvider((type: string, imageId: string) => {
    if (type !== 'scalingModule' || !imageId.startsWith('wadors:')) return undefined
    const sop = imageId.replace(/\/frames\/.*$/, '')
    let f = factors.get(sop)
    if (f === undefined) {
      const ds = instanceOf(imageId)
      if (!ds) return undefined
      f = suvbwFactor(ds)
      factors.set(sop, f)
    }
    return f === null ? undefined : { suvbw: f }
  }, 10_000)
}
