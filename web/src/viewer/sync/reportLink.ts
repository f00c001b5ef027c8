/**
 * The report window's side of the pairing (REQ: RPT-12, REC-11/12; UX R23): one endpoint for the life of the tab
 * (so its sequence numbers keep rising from task to task), the pairing id kept in sessionStorage (a reload keeps the
 * viewer window it opened), the study of a task (the case's exams → their linked studies, /api/imaging/exams/<id>/
 * studies; else the patient's studies found over QIDO-RS) and the next task of "我的任务".
 */
import { getCase } from '@/api/cases'
import { listTasks } from '@/api/tasks'
import type { TaskItem } from '@/api/types'
import { examStudies } from '@/components/upload/api'
import { findCaseStudies, type CaseLike } from '@/viewer/openStudy'
import { randomId, SyncEndpoint, type StudyPayload } from './protocol'

const PAIR_KEY = 'telerad.viewer-sync.pair'

export function pairId(storage: Storage = sessionStorage): string {
  let id = storage.getItem(PAIR_KEY)
  if (!id) {
    id = randomId()
    storage.setItem(PAIR_KEY, id)
  }
  return id
}

let endpoint: SyncEndpoint | null = null
let endpointUser: number | null = null
let current: StudyPayload | null = null

/** The report window's endpoint (created once per tab and user); it answers a viewer's `hello` with the study. */
export function reportEndpoint(userId: number): SyncEndpoint {
  if (!endpoint || endpointUser !== userId) {
    endpoint?.close()
    endpoint = new SyncEndpoint({ userId, pair: pairId(), role: 'report' })
    endpointUser = userId
    endpoint.on('hello', () => {
      if (current) endpoint?.send('study', current)
    })
  }
  return endpoint
}

/** Tell the viewer window (if any) to show `study`; remembered for a viewer that opens later. */
export function announceStudy(userId: number, study: StudyPayload): void {
  current = study
  reportEndpoint(userId).send('study', study)
}

export function currentStudy(): StudyPayload | null {
  return current
}

const byCase = new Map<number, Promise<StudyPayload | null>>()

/** The study a task's report is about: the newest study linked to the first of its case's exams that has one. */
export function studyForTask(task: TaskItem): Promise<StudyPayload | null> {
  let p = byCase.get(task.case_id)
  if (!p) {
    p = (async () => {
      const detail = await getCase(task.case_id)
      for (const exam of detail.exams) {
        const studies = await examStudies(exam.id)
        const s = studies[0]
        if (s) {
          return {
            studyUid: s.study_instance_uid,
            institution: s.institution?.code,
            caseId: task.case_id,
            taskId: task.id,
            examId: exam.id,
            label: `${task.case_no} · ${task.patient_name} · ${exam.modality} ${exam.body_part}`.slice(0, 200),
          }
        }
      }
      // no study linked to an exam yet: the patient's studies at the requesting hospital (QIDO-RS, the viewer's lookup)
      const found = (await findCaseStudies(detail as unknown as CaseLike))[0]
      if (!found) return null
      return {
        studyUid: found.studyUid,
        institution: found.institution,
        caseId: task.case_id,
        taskId: task.id,
        label: `${task.case_no} · ${task.patient_name} · ${task.modality} ${task.body_part}`.slice(0, 200),
      }
    })()
    p.catch(() => byCase.delete(task.case_id))
    byCase.set(task.case_id, p)
  }
  return p.then((s) => (s ? { ...s, taskId: task.id } : null))
}

/** The task after `taskId` in 我的任务 (the server's order: emergency first, then oldest), or null. */
export async function nextTask(taskId: number): Promise<TaskItem | null> {
  const page = await listTasks({ scope: 'mine', page_size: 100 })
  const i = page.items.findIndex((t) => t.id === taskId)
  const next = i >= 0 ? page.items[i + 1] : page.items.find((t) => t.id !== taskId)
  return next ?? null
}

/** For tests: forget the endpoint and the caches. */
export function resetReportLink(): void {
  endpoint?.close()
  endpoint = null
  endpointUser = null
  current = null
  byCase.clear()
}
