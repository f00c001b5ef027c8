// REQ: RPT-12, REC-11/12 (UX R18/R23) — the report window's side: one pairing id per tab, the study of a task (the
// exam's linked study, else the QIDO lookup), the next task of 我的任务, and a viewer's hello answered with the study.
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { TaskItem } from '@/api/types'

vi.mock('@/api/cases', () => ({
  getCase: vi.fn(async (id: number) => ({
    id,
    patient: { patient_no: `P${id}` },
    requesting_institution: { code: 'M01' },
    exams: id === 1 ? [{ id: 11, modality: 'CT', body_part: '胸部' }] : [{ id: 21, modality: 'DX', body_part: '胸部' }],
  })),
}))
vi.mock('@/components/upload/api', () => ({
  examStudies: vi.fn(async (examId: number) =>
    examId === 11 ? [{ study_instance_uid: '1.2.11', institution: { code: 'M01' } }] : [],
  ),
}))
vi.mock('@/viewer/openStudy', () => ({
  findCaseStudies: vi.fn(async () => [{ studyUid: '1.2.99', institution: 'M01', accession: '', date: '' }]),
}))
vi.mock('@/api/tasks', () => ({
  listTasks: vi.fn(async () => ({ items: [{ id: 5 }, { id: 7 }, { id: 9 }], total: 3, page: 1, page_size: 100 })),
}))

import { announceStudy, nextTask, pairId, reportEndpoint, resetReportLink, studyForTask } from '../reportLink'
import { SyncEndpoint, type ChannelLike } from '../protocol'

function task(id: number, caseId: number): TaskItem {
  return { id, case_id: caseId, case_no: `RC${caseId}`, patient_name: '张三', modality: 'CT', body_part: '胸部' } as TaskItem
}

afterEach(() => resetReportLink())

describe('rpt12 report link', () => {
  it('keeps one pairing id per tab', () => {
    const a = pairId()
    expect(a).toMatch(/^[0-9a-z]{18}$/)
    expect(pairId()).toBe(a)
  })

  it("finds a task's study: the exam's linked study, else the patient's studies over QIDO", async () => {
    expect(await studyForTask(task(3, 1))).toMatchObject({ studyUid: '1.2.11', institution: 'M01', caseId: 1, examId: 11, taskId: 3 })
    expect(await studyForTask(task(4, 2))).toMatchObject({ studyUid: '1.2.99', institution: 'M01', caseId: 2, taskId: 4 })
  })

  it('knows the next task of 我的任务', async () => {
    expect((await nextTask(5))!.id).toBe(7)
    expect(await nextTask(9)).toBeNull()
    expect((await nextTask(42))!.id).toBe(5) // the current one is no longer listed: the first
  })

  it("answers a viewer window's hello with the current study", () => {
    const posted: unknown[] = []
    const ch: ChannelLike = { onmessage: null, postMessage: (d) => void posted.push(d), close() {} }
    const ep = reportEndpoint(1)
    announceStudy(1, { studyUid: '1.2.11', institution: 'M01' })
    // a viewer of the same pair says hello through the channel: the endpoint answers with the study again
    const viewer = new SyncEndpoint({ userId: 1, pair: ep.pair, role: 'viewer', channel: ch })
    const hello = viewer.send('hello', { role: 'viewer' })
    const sent = vi.spyOn(ep, 'send')
    ep.receive(hello)
    expect(sent).toHaveBeenCalledWith('study', { studyUid: '1.2.11', institution: 'M01' })
    expect(posted).toHaveLength(1)
  })
})
