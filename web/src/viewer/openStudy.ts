/**
 * From a case (or an exam list row) to the viewer (issue 16; REQ: VIEW-01): the studies of the case's patient at
 * the requesting institution (QIDO-RS, so the server's visibility applies), the exam's own accession first, and
 * the viewer URL `/viewer/studies/<uid>?institution=CODE`.
 */
import { type DicomJson, tagString } from './core/dicomweb'

export interface CaseLike {
  patient: { patient_no?: string }
  requesting_institution: { code: string }
  exams: { accession_no?: string | null }[]
}

export interface StudyRef {
  studyUid: string
  institution: string
  accession: string
  date: string
}

export function viewerUrl(studyUid: string, institution?: string): string {
  const q = institution ? `?institution=${encodeURIComponent(institution)}` : ''
  return `/viewer/studies/${encodeURIComponent(studyUid)}${q}`
}

/** Order: studies whose accession is one of the case's exams first, then newest first. */
export function rankStudies(studies: StudyRef[], accessions: string[]): StudyRef[] {
  const acc = new Set(accessions.filter(Boolean))
  return [...studies].sort(
    (a, b) => Number(acc.has(b.accession)) - Number(acc.has(a.accession)) || b.date.localeCompare(a.date),
  )
}

export async function findCaseStudies(c: CaseLike): Promise<StudyRef[]> {
  const pid = c.patient.patient_no
  const inst = c.requesting_institution.code
  if (!pid) return []
  const q = new URLSearchParams({ PatientID: pid, institution: inst, limit: '50' })
  const resp = await fetch(`/dicomweb/studies?${q}`, {
    credentials: 'same-origin',
    headers: { Accept: 'application/dicom+json' },
  })
  if (resp.status === 204 || !resp.ok) return []
  const list = (await resp.json()) as DicomJson[]
  const refs = list.map((ds) => ({
    studyUid: tagString(ds, '0020000D'),
    institution: inst,
    accession: tagString(ds, '00080050'),
    date: tagString(ds, '00080020') + tagString(ds, '00080030'),
  }))
  return rankStudies(
    refs.filter((r) => r.studyUid),
    c.exams.map((e) => e.accession_no ?? ''),
  )
}
