/**
 * The columns of each list whose arrangement is a per-user setting `list.<listId>.columns` (issue 14),
 * in their own order. The lists render them; the 默认个人设置 page edits defaults over the same ids.
 */
import type { ColumnDef } from './useListColumns'

export const TASK_COLUMNS: readonly ColumnDef[] = [
  { id: 'emergency', labelKey: 'work.emergency', width: 70 },
  { id: 'tat', labelKey: 'work.tat', width: 120 },
  { id: 'case_no', labelKey: 'work.caseNo', minWidth: 130 },
  { id: 'patient_name', labelKey: 'work.patientName', minWidth: 80 },
  { id: 'modality', labelKey: 'work.modality', width: 80 },
  { id: 'body_part', labelKey: 'work.bodyPart', minWidth: 90 },
  { id: 'title', labelKey: 'work.task', minWidth: 120 },
  { id: 'institution', labelKey: 'work.institution', minWidth: 140 },
  { id: 'group', labelKey: 'work.group', minWidth: 90 },
  { id: 'assignee', labelKey: 'work.assignee', minWidth: 90 },
  { id: 'created_at', labelKey: 'work.createdAt', width: 140 },
  { id: 'claimed_at', labelKey: 'work.claimedAt', width: 140 },
]

export const CASE_COLUMNS: readonly ColumnDef[] = [
  { id: 'emergency', labelKey: 'work.emergency', width: 70 },
  { id: 'status', labelKey: 'common.status', width: 90 },
  { id: 'tat', labelKey: 'work.tat', width: 120 },
  { id: 'case_no', labelKey: 'work.caseNo', minWidth: 130 },
  { id: 'patient', labelKey: 'work.patient', minWidth: 130 },
  { id: 'exams', labelKey: 'cases.exams', minWidth: 230 },
  { id: 'institution', labelKey: 'work.institution', minWidth: 140 },
  { id: 'current_tasks', labelKey: 'cases.currentTasks', minWidth: 150 },
  { id: 'report_status', labelKey: 'cases.reportStatus', width: 110 },
  { id: 'created_at', labelKey: 'work.createdAt', width: 140 },
]

/** List id (the middle of the setting key) → its columns. 我的任务 and 抢单池 share the task table. */
export const LIST_COLUMNS: Readonly<Record<string, readonly ColumnDef[]>> = {
  tasks: TASK_COLUMNS,
  pool: TASK_COLUMNS,
  cases: CASE_COLUMNS,
}
