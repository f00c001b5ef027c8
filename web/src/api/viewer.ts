/**
 * Measurements/marks and key images of a study (issue 16; REQ: VIEW-08, RPT-05): /api/studies/<uid>/annotations and
 * /api/studies/<uid>/key-images (api/viewer/views.py). Every answer carries the version; a write names the version it
 * read and gets 409 `stale_version` when another doctor saved first (the caller renders it: silent).
 */
import { CSRF_HEADER, getCsrfToken, http } from './http'

export interface Author {
  id: number | null
  name: string
}

/** One Cornerstone3D annotation as stored (web/src/viewer/persist/serialize.ts). */
export interface StoredAnnotation {
  annotationUID: string
  toolName: string
  seriesUid: string
  sopUid: string
  frame: number
  metadata: Record<string, unknown>
  data: Record<string, unknown>
  author?: Author | null
}

export interface KeyImage {
  sop_uid: string
  series_uid: string
  frame: number
  note: string
  print: boolean
  author?: Author | null
}

export interface ViewerDocument<T> {
  study_uid: string
  institution: string
  version: number
  items: T[]
  can_edit: boolean
  updated_by: Author | null
  updated_at: string | null
  series_instance_uid: string | null
  sop_instance_uid: string | null
  /** The write's DICOM document (SR / KOS) is in the archive (PUT answers only). */
  stored: boolean
}

function url(studyUid: string, what: 'annotations' | 'key-images'): string {
  return `/studies/${encodeURIComponent(studyUid)}/${what}`
}

function params(institution?: string): Record<string, string> | undefined {
  return institution ? { institution } : undefined
}

export async function getAnnotations(studyUid: string, institution?: string): Promise<ViewerDocument<StoredAnnotation>> {
  const { data } = await http.get<ViewerDocument<StoredAnnotation>>(url(studyUid, 'annotations'), {
    params: params(institution),
    silent: true,
  })
  return data
}

/** `sr`: the SR TID 1500 (base64 Part-10) made by the adapters; omitted when none could be made (no mark left). */
export async function putAnnotations(
  studyUid: string,
  version: number,
  annotations: StoredAnnotation[],
  sr: string | null,
  institution?: string,
): Promise<ViewerDocument<StoredAnnotation>> {
  const { data } = await http.put<ViewerDocument<StoredAnnotation>>(
    url(studyUid, 'annotations'),
    { annotations, sr },
    { params: params(institution), headers: { 'If-Match': `"${version}"` }, silent: true },
  )
  return data
}

export async function getKeyImages(studyUid: string, institution?: string): Promise<ViewerDocument<KeyImage>> {
  const { data } = await http.get<ViewerDocument<KeyImage>>(url(studyUid, 'key-images'), {
    params: params(institution),
    silent: true,
  })
  return data
}

export async function putKeyImages(
  studyUid: string,
  version: number,
  items: KeyImage[],
  institution?: string,
): Promise<ViewerDocument<KeyImage>> {
  const { data } = await http.put<ViewerDocument<KeyImage>>(
    url(studyUid, 'key-images'),
    { items: items.map(({ author: _author, ...rest }) => rest) },
    { params: params(institution), headers: { 'If-Match': `"${version}"` }, silent: true },
  )
  return data
}

/** A rendered (JPEG) thumbnail of one frame, for the key image lists (WADO-RS rendered). */
export function renderedFrameUrl(studyUid: string, k: Pick<KeyImage, 'series_uid' | 'sop_uid' | 'frame'>, institution?: string): string {
  const q = new URLSearchParams({ viewport: '128,128' })
  if (institution) q.set('institution', institution)
  return (
    `/dicomweb/studies/${encodeURIComponent(studyUid)}/series/${encodeURIComponent(k.series_uid)}` +
    `/instances/${encodeURIComponent(k.sop_uid)}/frames/${k.frame}/rendered?${q.toString()}`
  )
}

/** The key images of one of a case's studies (GET /api/cases/<id>/key-images). */
export interface CaseStudyKeyImages {
  study_uid: string
  institution: string
  study_date: string
  study_description: string
  modalities: string
  /** Matched to the case's exams (else another study of the patient). */
  of_case: boolean
  version: number
  items: KeyImage[]
}

export async function getCaseKeyImages(caseId: number | string): Promise<CaseStudyKeyImages[]> {
  const { data } = await http.get<CaseStudyKeyImages[]>(`/cases/${caseId}/key-images`, { silent: true })
  return data
}

/** The viewer URL that opens at one key image (web/src/viewer/persist/navigate.ts reads series/sop/frame). */
export function keyImageViewerUrl(s: Pick<CaseStudyKeyImages, 'study_uid' | 'institution'>, k: KeyImage): string {
  const q = new URLSearchParams({ series: k.series_uid, sop: k.sop_uid, frame: String(k.frame) })
  if (s.institution) q.set('institution', s.institution)
  return `/viewer/studies/${encodeURIComponent(s.study_uid)}?${q.toString()}`
}

/** The most a keepalive request may carry (browsers allow 64 KiB in flight for requests that outlive the page). */
export const KEEPALIVE_MAX = 60 * 1024

/**
 * Save the marks as the page goes away (beforeunload): a `fetch` with keepalive, which the browser completes after
 * the page is gone. The SR is left out when the body would be too large with it; false when even the JSON alone is
 * too large (the caller then asks the user to stay).
 */
export function putAnnotationsKeepalive(
  studyUid: string,
  version: number,
  annotations: StoredAnnotation[],
  sr: string | null,
  institution?: string,
): boolean {
  let body = JSON.stringify({ annotations, sr })
  if (body.length > KEEPALIVE_MAX) body = JSON.stringify({ annotations, sr: null })
  if (new Blob([body]).size > KEEPALIVE_MAX) return false
  const q = institution ? `?${new URLSearchParams({ institution }).toString()}` : ''
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'If-Match': `"${version}"` }
  const token = getCsrfToken()
  if (token) headers[CSRF_HEADER] = token
  void fetch(`/api${url(studyUid, 'annotations')}${q}`, {
    method: 'PUT',
    body,
    headers,
    credentials: 'same-origin',
    keepalive: true,
  }).catch(() => undefined)
  return true
}
