import type { ExamStatus } from '@/api/types'

/**
 * UX.md R2: the fixed exam status set. Labels come from vue-i18n
 * (`examStatus.<code>`, exactly 已登记 … 已更正); each status has its own colour,
 * used as `el-tag` class `exam-status-<code>` (colours live in styles.css and
 * are repeated here for tests and docs).
 */
export const EXAM_STATUS_ORDER: readonly ExamStatus[] = [
  'registered',
  'in_progress', // 检查中: the modality reported MPPS IN PROGRESS (DCM-05)
  'examined',
  'awaiting',
  'preliminary',
  'pending_review',
  'review_rejected',
  'reviewed',
  'released',
  'printed',
  'corrected',
]

/** 我的诊断记录's status chips (UX.md R2; 检查中 is the modality's MPPS step, not one of the list's chips). */
export const CHIP_STATUSES: readonly ExamStatus[] = EXAM_STATUS_ORDER.filter((s) => s !== 'in_progress')

export const EXAM_STATUS_COLORS: Readonly<Record<ExamStatus, string>> = {
  registered: '#909399', // grey
  in_progress: '#409eff', // light blue: being scanned
  examined: '#1f5fa8', // blue: images have arrived
  awaiting: '#e6a23c', // amber: waiting for a doctor
  preliminary: '#13a8a8', // teal
  pending_review: '#7b5cd6', // violet
  review_rejected: '#f56c6c', // red
  reviewed: '#3a9b5c', // green
  released: '#1b7a3d', // dark green
  printed: '#4b5563', // slate
  corrected: '#c2410c', // dark orange
}

export function isExamStatus(code: string | null | undefined): code is ExamStatus {
  return !!code && (EXAM_STATUS_ORDER as readonly string[]).includes(code)
}

export const CASE_STATUS_TAG: Readonly<Record<string, 'primary' | 'success' | 'danger' | 'info'>> = {
  open: 'primary',
  completed: 'success',
  incident: 'danger',
  cancelled: 'info',
}

export const MODALITIES = ['CT', 'MR', 'DX', 'CR', 'US', 'MG', 'RF', 'XA', 'NM', 'PT'] as const

/** Report level colours for the revision trace (TRACE-02). */
export const LEVEL_COLORS: Readonly<Record<string, string>> = {
  l1: '#1f5fa8',
  l2: '#c2410c',
  l3: '#7b5cd6',
}

/**
 * A report's status as the exam status it shows (UX.md R2), or null when it has none of its own: a rejected
 * round (rejected_l2 / rejected_l3) shows 审核驳回; draft and voided have their own labels (cases.reportDraft,
 * cases.reportVoided). Never the raw code.
 */
export function reportStatusAsExam(code: string | null | undefined): ExamStatus | null {
  if (isExamStatus(code)) return code
  if (code && code.startsWith('rejected_')) return 'review_rejected'
  return null
}
