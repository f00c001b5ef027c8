/**
 * The measurement report of a study's marks as DICOM SR TID 1500 (issue 16; REQ: VIEW-08), made in the browser by
 * Cornerstone3D's adapters (`adaptersSR.Cornerstone3D.MeasurementReport.generateReport`) and written as a Part-10 file
 * by dcmjs (`datasetToDict(ds).write()`); the server checks it and stores it through its receive path.
 *
 * The adapters read the images' metadata through a provider: Cornerstone's own (image plane, pixel spacing …), with
 * the instance itself (study, patient and series attributes, naturalized by dcmjs from the WADO-RS metadata the
 * viewer loaded) and the frame number added here. Tools the adapters have no TID 1500 form for (the text label) are
 * kept in the JSON only.
 */
import { metaData } from '@cornerstonejs/core'
import dicomImageLoader from '@cornerstonejs/dicom-image-loader'
import { adaptersSR } from '@cornerstonejs/adapters'
import dcmjs from 'dcmjs'
import { i18n } from '@/i18n'
import { parseImageId } from '@/viewer/core/dicomweb'
import type { CsAnnotation } from './serialize'

const { MeasurementReport } = adaptersSR.Cornerstone3D

export interface SrOptions {
  /** Kept from the last report of the study, so its reports form one series. */
  seriesUid?: string | null
  instanceNumber: number
}

type ToolState = Record<string, Record<string, { data: CsAnnotation[] }>>

function instanceOf(imageId: string): Record<string, unknown> | undefined {
  const json = dicomImageLoader.wadors.metaDataManager.get(imageId) as Record<string, unknown> | undefined
  return json ? dcmjs.data.DicomMetaDictionary.naturalizeDataset(json) : undefined
}

const provider = {
  get(type: string, imageId: string): unknown {
    if (type === 'frameNumber') return parseImageId(imageId)?.frame ?? 1
    if (type === 'instance') return instanceOf(imageId)
    const found = metaData.get(type, imageId)
    if (found !== undefined || type !== 'sopCommonModule') return found
    const inst = instanceOf(imageId)
    return inst ? { sopClassUID: inst.SOPClassUID, sopInstanceUID: inst.SOPInstanceUID } : undefined
  },
}

/** Whether the adapters can write this annotation's tool as a TID 1500 measurement group. */
export function supported(a: CsAnnotation): boolean {
  return MeasurementReport.measurementAdapterByToolType.has(a.metadata.toolName)
}

function toolState(annotations: CsAnnotation[]): ToolState {
  const state: ToolState = {}
  for (const a of annotations) {
    const imageId = a.metadata.referencedImageId
    if (!imageId || !supported(a)) continue
    const byTool = (state[imageId] ??= {})
    ;(byTool[a.metadata.toolName] ??= { data: [] }).data.push(a)
  }
  return state
}

function base64(buf: ArrayBuffer): string {
  const bytes = new Uint8Array(buf)
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

/** The SR (base64 Part-10) of the annotations the adapters support, or null when there are none. */
export function measurementReport(annotations: CsAnnotation[], opts: SrOptions): string | null {
  const state = toolState(annotations)
  if (Object.keys(state).length === 0) return null
  const report = MeasurementReport.generateReport(state, provider, {
    SeriesDescription: i18n.global.t('viewer.marks.srSeries', {}, { locale: 'zh-CN' }), // stored data: zh-CN whatever the UI language
    SeriesNumber: '9901',
    InstanceNumber: opts.instanceNumber,
    SeriesInstanceUID: opts.seriesUid || undefined,
    Manufacturer: 'telerad',
    ManufacturerModelName: 'telerad viewer',
    ImageComments: i18n.global.t('viewer.marks.srComments', {}, { locale: 'zh-CN' }),
  })
  // the adapters set the character set on the report object, not on its data set: the Chinese series description
  // and any Chinese label need it in the file (ISO_IR 192, UTF-8)
  const ds = report.dataset as Record<string, unknown>
  ds.SpecificCharacterSet = 'ISO_IR 192'
  const dict = dcmjs.data.datasetToDict(ds)
  return base64(dict.write())
}
