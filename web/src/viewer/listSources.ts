/**
 * The reading lists of the app's lists (UX R18, ./readingList.ts): 我的任务 (a task's study: its case's exam's
 * linked study, as the report window finds it), the case list (the case patient's study at the requesting
 * hospital) and the imaging list (the row's study). Each item looks its study up only when the viewer asks.
 */
import type { TaskItem } from '@/api/types'
import { studyForTask } from '@/viewer/sync/reportLink'
import { type CaseLike, findCaseStudies } from './openStudy'
import type { ReadingItem } from './readingList'

export const taskKey = (t: Pick<TaskItem, 'id'>): string => `task:${t.id}`
export const caseKey = (c: { id: number }): string => `case:${c.id}`
export const studyKey = (uid: string): string => `study:${uid}`

export function taskItems(tasks: TaskItem[]): ReadingItem[] {
  return tasks
    .filter((t) => t.case_id)
    .map((t) => ({
      key: taskKey(t),
      resolve: async () => {
        const s = await studyForTask(t)
        return s ? { studyUid: s.studyUid, institution: s.institution } : null
      },
    }))
}

export function caseItems(cases: (CaseLike & { id: number })[]): ReadingItem[] {
  return cases.map((c) => ({
    key: caseKey(c),
    resolve: async () => {
      const s = (await findCaseStudies(c))[0]
      return s ? { studyUid: s.studyUid, institution: s.institution } : null
    },
  }))
}

export function studyItems(studies: { study_instance_uid: string; institution?: { code: string } | null }[]): ReadingItem[] {
  return studies.map((s) => ({
    key: studyKey(s.study_instance_uid),
    study: { studyUid: s.study_instance_uid, institution: s.institution?.code },
  }))
}
