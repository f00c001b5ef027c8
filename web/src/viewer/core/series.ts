/**
 * The study as the viewer sees it (REQ: VIEW-01/02): series from QIDO-RS, instances from WADO-RS metadata, handed
 * to the dicom-image-loader's WADO-RS metadata provider and turned into one ordered stack of `wadors:` image ids per
 * series (every frame of a multi-frame instance is one image).
 */
import dicomImageLoader from '@cornerstonejs/dicom-image-loader'
import { i18n } from '@/i18n'
import {
  type DicomJson,
  frameImageId,
  searchSeries,
  seriesMetadata,
  type SeriesInfo,
  tagNumber,
  tagString,
  tagValues,
} from './dicomweb'
import { withPaletteValues } from './palette'

/** Series without pixel data — structured reports, key-image selections, presentation states — with what they are
 * called in Chinese; they are listed in the series browser but never put in a viewport. */
export const NON_IMAGE_SERIES: Readonly<Record<string, string>> = {
  get SR() { return i18n.global.t('viewer.series.SR') },
  get KO() { return i18n.global.t('viewer.series.KO') },
  get PR() { return i18n.global.t('viewer.series.PR') },
  get DOC() { return i18n.global.t('viewer.series.DOC') },
  get REG() { return i18n.global.t('viewer.series.REG') },
}

export function isImageSeries(modality: string | undefined): boolean {
  return !NON_IMAGE_SERIES[modality ?? '']
}

export interface ViewerImage {
  imageId: string
  sopUid: string
  frame: number
  instance: DicomJson
}

export interface ViewerSeries extends SeriesInfo {
  images: ViewerImage[]
  /** Frames per second of a multi-frame instance (CineRate / FrameTime), when it says. */
  cineFps?: number
  multiFrame: boolean
}

function dot(a: number[], b: number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/** Order instances along the slice normal when all have a position and orientation, else by InstanceNumber. */
export function sortInstances(instances: DicomJson[]): DicomJson[] {
  const num = (ds: DicomJson) => tagNumber(ds, '00200013') ?? 0
  const iop = tagValues<number>(instances[0], '00200037').map(Number)
  const all = instances.every((ds) => tagValues(ds, '00200032').length === 3)
  if (iop.length === 6 && all && instances.length > 1) {
    const n = [
      iop[1] * iop[5] - iop[2] * iop[4],
      iop[2] * iop[3] - iop[0] * iop[5],
      iop[0] * iop[4] - iop[1] * iop[3],
    ]
    const pos = (ds: DicomJson) => dot(tagValues<number>(ds, '00200032').map(Number), n)
    const sorted = [...instances].sort((a, b) => pos(b) - pos(a) || num(a) - num(b))
    // Positions all equal (e.g. a dynamic series): keep InstanceNumber order.
    if (pos(sorted[0]) !== pos(sorted[sorted.length - 1])) return sorted
  }
  return [...instances].sort((a, b) => num(a) - num(b))
}

/** Register an instance's metadata for each of its frames' image ids. */
function register(imageId: string, frame: number, instance: DicomJson): void {
  const ds = withPaletteValues(instance)
  dicomImageLoader.wadors.metaDataManager.add(imageId, ds as never)
  if (frame === 1 && imageId.includes('?')) {
    // The manager finds frame N of a multi-frame instance under ".../frames/1" without a query string.
    dicomImageLoader.wadors.metaDataManager.add(imageId.slice(0, imageId.indexOf('?')), ds as never)
  }
}

export function buildSeries(
  info: SeriesInfo,
  instances: DicomJson[],
  studyUid: string,
  institution?: string,
): ViewerSeries {
  const images: ViewerImage[] = []
  let multiFrame = false
  let cineFps: number | undefined
  for (const ds of sortInstances(instances)) {
    const sopUid = tagString(ds, '00080018')
    const frames = Math.max(1, tagNumber(ds, '00280008') ?? 1)
    if (frames > 1) {
      multiFrame = true
      const rate = tagNumber(ds, '00180040')
      const frameTime = tagNumber(ds, '00181063')
      cineFps ??= rate || (frameTime ? Math.round(1000 / frameTime) : undefined)
    }
    for (let f = 1; f <= frames; f++) {
      const imageId = frameImageId(studyUid, info.seriesUid, sopUid, f, institution)
      register(imageId, f, ds)
      images.push({ imageId, sopUid, frame: f, instance: ds })
    }
  }
  const first = instances[0]
  return {
    ...info,
    modality: info.modality || tagString(first, '00080060'),
    number: info.number ?? tagNumber(first, '00200011'),
    description: info.description || tagString(first, '0008103E'),
    images,
    multiFrame,
    cineFps,
  }
}

/** Series list of a study (fast: one QIDO request). */
export function loadSeriesList(studyUid: string, institution?: string, signal?: AbortSignal): Promise<SeriesInfo[]> {
  return searchSeries(studyUid, institution, signal)
}

/** Metadata of one series → its ordered stack. */
export async function loadSeries(
  info: SeriesInfo,
  studyUid: string,
  institution?: string,
  signal?: AbortSignal,
): Promise<ViewerSeries> {
  const instances = await seriesMetadata(studyUid, info.seriesUid, institution, signal)
  return buildSeries(info, instances, studyUid, institution)
}
