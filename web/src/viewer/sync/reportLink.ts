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
import { shallowRef } from 'vue'
import { type Envelope, type MessageType, type Payloads, randomId, SyncEndpoint, type StudyPayload } from './protocol'

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
/** The study the report window is about (reactive: the 图像 card's series list follows it). */
export const reportStudy = shallowRef<StudyPayload | null>(null)
/** Whether a viewer window answers on the channel (it said hello or sent an image, and has not said bye). */
export const viewerLinked = shallowRef(false)
let viewerWindow: Window | null = null

type Listener = (payload: never, msg: Envelope) => void
const listeners = new Map<MessageType, Set<Listener>>()
const RELAYED: MessageType[] = ['hello', 'bye', 'series', 'image', 'key-images']

/** Messages from the viewer window, for the report page's parts (whether or not the endpoint exists yet). */
export function onViewerMessage<T extends MessageType>(type: T, cb: (payload: Payloads[T], msg: Envelope) => void): () => void {
  let set = listeners.get(type)
  if (!set) listeners.set(type, (set = new Set()))
  set.add(cb as unknown as Listener)
  return () => set!.delete(cb as unknown as Listener)
}

/** The report window's endpoint (created once per tab and user); it answers a viewer's `hello` with the study. */
export function reportEndpoint(userId: number): SyncEndpoint {
  if (!endpoint || endpointUser !== userId) {
    endpoint?.close()
    endpoint = new SyncEndpoint({ userId, pair: pairId(), role: 'report' })
    endpointUser = userId
    endpoint.on('hello', () => {
      if (current) endpoint?.send('study', current)
      if (next) endpoint?.send('next', next)
    })
    for (const type of RELAYED) {
      endpoint.on(type, (payload, msg) => {
        viewerLinked.value = type !== 'bye'
        for (const cb of listeners.get(type) ?? []) cb(payload as never, msg)
      })
    }
  }
  return endpoint
}

/** Tell the viewer window (if any) to show `study`; remembered for a viewer that opens later. */
export function announceStudy(userId: number, study: StudyPayload): void {
  current = study
  reportStudy.value = study
  reportEndpoint(userId).send('study', study)
}

let next: StudyPayload | null = null
/** Tell the viewer window which exam comes next (it prefetches it; UX R18). */
export function announceNext(userId: number, study: StudyPayload | null): void {
  next = study
  if (study) reportEndpoint(userId).send('next', study)
}

/** The viewer window this report window opened (to bring it to the front when it is told to show something). */
export function setViewerWindow(win: Window | null): void {
  viewerWindow = win
}

export interface ShowRequest {
  study: StudyPayload
  seriesUid: string
  /** A key image; without it the series from its first image. */
  sopUid?: string
  frame?: number
}
const showListeners = new Set<(r: ShowRequest) => boolean>()

/** This window's own viewer (the 报告+影像 split) also shows what the 图像 card picks (true: it did). */
export function onShowRequest(cb: (r: ShowRequest) => boolean): () => void {
  showListeners.add(cb)
  return () => showListeners.delete(cb)
}

/**
 * Show a series or key image picked in the report window (the 图像 card): in the viewer window when one is linked
 * (its study switched first when it shows another), and in this window's embedded viewer. False when neither is
 * there to show it (the caller opens the viewer itself).
 */
export function showInViewer(userId: number, r: ShowRequest): boolean {
  let here = false
  for (const cb of showListeners) here = cb(r) || here
  if (!viewerLinked.value) return here
  if (!current || current.studyUid !== r.study.studyUid || current.institution !== r.study.institution) {
    announceStudy(userId, r.study)
  }
  const ep = reportEndpoint(userId)
  ep.send('series', { studyUid: r.study.studyUid, seriesUid: r.seriesUid })
  if (r.sopUid) ep.send('image', { studyUid: r.study.studyUid, seriesUid: r.seriesUid, sopUid: r.sopUid, frame: r.frame ?? 1 })
  if (viewerWindow && !viewerWindow.closed) viewerWindow.focus()
  return true
}

/** The report window changed a study's key images (note, 打印): the viewer window reads them again. */
export function announceKeyImages(userId: number, studyUid: string, sopUids: string[]): void {
  if (viewerLinked.value) reportEndpoint(userId).send('key-images', { studyUid, sopUids })
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
  next = null
  reportStudy.value = null
  viewerLinked.value = false
  viewerWindow = null
  listeners.clear()
  showListeners.clear()
  byCase.clear()
}
