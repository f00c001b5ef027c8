/**
 * telerad's DICOMweb for the viewer (REQ: VIEW-01; issue 15's /dicomweb): QIDO-RS series of a study, WADO-RS
 * series metadata (UTF-8 DICOM JSON, so GB18030 names stay readable) and the `wadors:` image ids whose frames the
 * dicom-image-loader fetches. The session cookie authenticates; the server decides visibility (404 outside it).
 */
import { i18n } from '@/i18n'
import { loadPaletteBulk } from './palette'

export type DicomJson = Record<string, { vr?: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }>

export const DICOMWEB = '/dicomweb'

export class DicomwebError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
  /** The study is outside the user's visibility or does not exist (the server answers both with 404). */
  get notVisible(): boolean {
    return this.status === 404 || this.status === 403
  }
}

export function tagValue<T = unknown>(ds: DicomJson | undefined, tag: string): T | undefined {
  const v = ds?.[tag]?.Value
  return v && v.length ? (v[0] as T) : undefined
}

export function tagValues<T = unknown>(ds: DicomJson | undefined, tag: string): T[] {
  return (ds?.[tag]?.Value as T[] | undefined) ?? []
}

export function tagString(ds: DicomJson | undefined, tag: string): string {
  const v = tagValue<unknown>(ds, tag)
  if (v === undefined || v === null) return ''
  if (typeof v === 'object' && v !== null && 'Alphabetic' in v) return String((v as { Alphabetic: string }).Alphabetic ?? '')
  return String(v)
}

export function tagNumber(ds: DicomJson | undefined, tag: string): number | undefined {
  const v = tagValue<unknown>(ds, tag)
  if (v === undefined || v === null || v === '') return undefined
  const n = Number(v)
  return Number.isFinite(n) ? n : undefined
}

function query(institution?: string, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams(extra)
  if (institution) p.set('institution', institution)
  const s = p.toString()
  return s ? `?${s}` : ''
}

export function studyBase(studyUid: string): string {
  return `${DICOMWEB}/studies/${encodeURIComponent(studyUid)}`
}

async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(url, {
    credentials: 'same-origin',
    headers: { Accept: 'application/dicom+json' },
    signal,
  })
  if (resp.status === 204) return [] as T
  if (!resp.ok) {
    let code = `http_${resp.status}`
    let message = resp.status === 404 ? i18n.global.t('viewer.notFound') : i18n.global.t('viewer.serviceError', { status: resp.status })
    try {
      const body = (await resp.json()) as { code?: string; message?: string }
      if (body.code) code = body.code
      if (body.message) message = body.message
    } catch {
      /* not JSON: keep the generic message */
    }
    throw new DicomwebError(resp.status, code, message)
  }
  return (await resp.json()) as T
}

export interface SeriesInfo {
  seriesUid: string
  modality: string
  number: number | undefined
  description: string
  instanceCount: number
}

/** QIDO-RS: the series of a study, in series-number order. */
export async function searchSeries(studyUid: string, institution?: string, signal?: AbortSignal): Promise<SeriesInfo[]> {
  const list = await getJson<DicomJson[]>(
    `${studyBase(studyUid)}/series${query(institution)}`,
    signal,
  )
  return toSeriesList(list)
}

/** QIDO-RS series results → the viewer's series, in series-number order. */
export function toSeriesList(list: DicomJson[]): SeriesInfo[] {
  return list
    .map((ds) => ({
      seriesUid: tagString(ds, '0020000E'),
      modality: tagString(ds, '00080060'),
      number: tagNumber(ds, '00200011'),
      description: tagString(ds, '0008103E'),
      instanceCount: tagNumber(ds, '00201209') ?? 0,
    }))
    .sort((a, b) => (a.number ?? 1e9) - (b.number ?? 1e9))
}

/** WADO-RS: the metadata of every instance of a series. */
export async function seriesMetadata(
  studyUid: string,
  seriesUid: string,
  institution?: string,
  signal?: AbortSignal,
): Promise<DicomJson[]> {
  const list = await getJson<DicomJson[]>(
    `${studyBase(studyUid)}/series/${encodeURIComponent(seriesUid)}/metadata${query(institution)}`,
    signal,
  )
  await loadPaletteBulk(list, signal)
  return list
}

/** WADO-RS: the metadata of every instance of the study (one request for all series). */
export async function studyMetadata(studyUid: string, institution?: string, signal?: AbortSignal): Promise<DicomJson[]> {
  const list = await getJson<DicomJson[]>(`${studyBase(studyUid)}/metadata${query(institution)}`, signal)
  await loadPaletteBulk(list, signal)
  return list
}

export function thumbnailUrl(studyUid: string, seriesUid: string, institution?: string): string {
  return `${studyBase(studyUid)}/series/${encodeURIComponent(seriesUid)}/thumbnail${query(institution, { viewport: '96,96' })}`
}

/** `wadors:` image id of one frame (1-based). */
export function frameImageId(
  studyUid: string,
  seriesUid: string,
  sopUid: string,
  frame: number,
  institution?: string,
): string {
  const origin = typeof location !== 'undefined' ? location.origin : ''
  return `wadors:${origin}${studyBase(studyUid)}/series/${encodeURIComponent(seriesUid)}/instances/${encodeURIComponent(
    sopUid,
  )}/frames/${frame}${query(institution)}`
}

/** Parse a `wadors:` image id back into its UIDs and frame. */
export function parseImageId(
  imageId: string,
): { studyUid: string; seriesUid: string; sopUid: string; frame: number } | null {
  const m = imageId.match(/\/studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)\/frames\/(\d+)/)
  if (!m) return null
  return {
    studyUid: decodeURIComponent(m[1]),
    seriesUid: decodeURIComponent(m[2]),
    sopUid: decodeURIComponent(m[3]),
    frame: Number(m[4]),
  }
}
