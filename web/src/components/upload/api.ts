// /api/imaging/exams/<id>/studies (REQ: REG-16): the studies linked to an exam, and linking just-uploaded ones.
import { http } from '@/api/http'
import type { InstitutionRef } from '@/api/types'

export interface ExamStudy {
  id: number
  study_instance_uid: string
  patient_id: string
  patient_name: string
  study_date: string
  accession_number: string
  study_description: string
  modalities: string[]
  institution: InstitutionRef | null
  series_count: number
  instance_count: number
  exam_id: number | null
  linked_now: boolean
}

export async function examStudies(examId: number): Promise<ExamStudy[]> {
  const r = await http.get<{ items: ExamStudy[] }>(`/imaging/exams/${examId}/studies`, { silent: true })
  return r.data.items
}

export async function linkStudies(examId: number, uids: string[]): Promise<ExamStudy[]> {
  const r = await http.post<{ items: ExamStudy[] }>(
    `/imaging/exams/${examId}/studies`,
    { study_instance_uids: uids },
    { silent: true },
  )
  return r.data.items
}

/** The viewer's bookmarkable URL (issue 16): /viewer/studies/<StudyInstanceUID>?institution=CODE. */
export function viewerUrl(s: Pick<ExamStudy, 'study_instance_uid' | 'institution'>): string {
  const q = s.institution?.code ? `?institution=${encodeURIComponent(s.institution.code)}` : ''
  return `/viewer/studies/${s.study_instance_uid}${q}`
}
