// Shared types for the telerad JSON API (see the backend contract).

export type AuthState = 'active' | 'mfa_required' | 'password_change_required'
export type PasswordChangeReason = 'first_login' | 'password_expired' | 'admin_reset'
export type InstitutionKind = 'central' | 'member'
export type ReviewStatus = 'pending' | 'approved' | 'rejected'

export interface ApiErrorBody {
  code: string
  message: string
  details?: Record<string, unknown>
}

export interface Paged<T> {
  items: T[]
  total: number
  page: number
  page_size: number
}

export interface InstitutionRef {
  id: number
  code: string
  name: string
  kind?: InstitutionKind
}

export interface DepartmentRef {
  id: number
  name: string
}

export interface RoleRef {
  id?: number
  code: string
  name: string
}

export interface Me {
  id: number
  username: string
  full_name: string
  institution: InstitutionRef & { kind: InstitutionKind }
  department: DepartmentRef | null
  roles: RoleRef[]
  permissions: string[]
  menus: string[]
  state: AuthState
  csrf_token: string
  mfa_enrolled: boolean
  last_login_at: string | null
  last_login_ip: string | null
  failed_logins_since_last: number
  password_expires_at: string | null
}

export interface LoginResult {
  csrf_token: string
  state: AuthState
  reason?: PasswordChangeReason
  mfa_enrolled?: boolean
}

export interface StateResult {
  state: AuthState
  csrf_token: string
  reason?: PasswordChangeReason
}

export interface MfaEnrollment {
  secret: string
  otpauth_uri: string
}

export interface SessionInfo {
  id: string | number
  created_at: string
  last_seen_at: string
  ip: string
  user_agent: string
  current: boolean
}

export interface PublicInstitution {
  id: number
  code: string
  name: string
  kind: InstitutionKind
  departments: DepartmentRef[]
}

export interface Institution extends PublicInstitution {
  parent_id: number | null
}

export interface RegistrationStatus {
  review_status: ReviewStatus
  reject_reason: string | null
  full_name: string
  institution_id: number
  department_id: number | null
  title: string | null
  phone_masked: string
  id_number_masked: string
}

/** A person reference that may come back as a plain string or an object. */
export type ActorRef = string | { id?: number; username?: string; full_name?: string } | null

export interface ReviewItem {
  id: number
  username: string
  full_name: string
  institution: InstitutionRef
  department: DepartmentRef | string | null
  title: string | null
  phone_masked: string
  review_status: ReviewStatus
  submitted_at: string
  reviewed_at: string | null
  reviewed_by: ActorRef
  reject_reason: string | null
  source: 'self' | 'admin'
}

export interface ReviewPhoto {
  id: number | string
  kind: 'id_card' | 'qualification'
  url: string
}

export interface ReviewHistoryEntry {
  ts: string
  action: string
  actor: ActorRef
  reason: string | null
}

export interface ReviewDetail extends ReviewItem {
  id_number_masked: string
  photos: ReviewPhoto[]
  history: ReviewHistoryEntry[]
}

export interface UserItem {
  id: number
  username: string
  full_name: string
  institution: InstitutionRef
  department: DepartmentRef | null
  title: string | null
  phone_masked: string
  review_status: ReviewStatus
  enabled: boolean
  locked: boolean
  roles: Required<RoleRef>[]
  last_login_at: string | null
  created_at: string
}

export interface Role {
  id: number
  code: string
  name: string
  description: string | null
  enabled: boolean
  builtin: boolean
  institution: InstitutionRef | null
  permissions: string[]
  user_count: number
  /** Where the role may be held (issue 11): central / member hospitals only, any, or null for nowhere. */
  scope?: RoleScope | null
}

export type RoleScope = 'central' | 'member' | 'any'

export interface Permission {
  code: string
  name: string
  kind: 'menu' | 'function'
  parent: string | null
  domain: string
  scope?: RoleScope
}

export interface AuditEvent {
  id: number | string
  ts: string
  username: string | null
  roles: unknown
  institution_code: string | null
  ip: string | null
  user_agent: string | null
  event_type: string
  event_name: string | null
  object_type: string | null
  object_id: string | number | null
  outcome: 'success' | 'failure'
  reason: string | null
  request_id: string | null
  details: unknown
}

export interface AuditEventType {
  code: string
  name: string
}

export interface AuditVerifyResult {
  ok: boolean
  checked: number
  broken_at: number | string | null
}

// ---- case engine (issue 3): cases, tasks, reports, processes ----

/** UX.md R2 exam status set (fixed labels and colours, see utils/examStatus.ts). */
export type ExamStatus =
  | 'registered'
  | 'in_progress'
  | 'examined'
  | 'awaiting'
  | 'preliminary'
  | 'pending_review'
  | 'review_rejected'
  | 'reviewed'
  | 'released'
  | 'printed'
  | 'corrected'

export type CaseStatus = 'open' | 'completed' | 'incident' | 'cancelled'
export type Sex = 'M' | 'F' | 'U'
export type Modality = 'CT' | 'MR' | 'DX' | 'CR' | 'US' | 'MG' | 'RF' | 'XA' | 'NM' | 'PT'
export type ReportLevel = 'l1' | 'l2' | 'l3'
export type TaskScope = 'mine' | 'group' | 'pool' | 'all'

export interface PersonRef {
  id: number
  full_name: string
}

export interface CodeName {
  code: string
  name: string
}

export interface CaseExam {
  id: number
  exam_no: string
  modality: Modality | string
  body_part: string
  exam_item: string
  status: ExamStatus | string
  exam_time?: string | null
  accession_no?: string | null
}

export interface CaseTaskRef {
  id: number
  task_name: string
  title: string
  assignee: PersonRef | null
  in_pool: boolean
}

/** GET /api/cases/counts: the status chips' numbers (UX.md R2) over a date window. */
export interface CaseCounts {
  window: { date_from: string; date_to: string }
  counts: Record<ExamStatus | 'emergency' | 'overdue' | 'total', number>
  /** 申请医院 of the window's cases, for the hospital select. */
  institutions: { id: number; name: string; count: number }[]
}

export interface CaseItem {
  id: number
  case_no: string
  status: CaseStatus | string
  emergency: boolean
  patient: { name: string; sex: Sex | string; age: number | string | null }
  exams: CaseExam[]
  requesting_institution: InstitutionRef
  created_at: string
  due_at?: string | null
  tat_limit_minutes?: number | null
  current_tasks: CaseTaskRef[]
  report_status: string | null
  printed: boolean
}

export interface CaseHistoryEntry {
  ts: string
  event: string
  event_name: string
  actor: string | null
  task_title: string | null
  details: unknown
}

export interface RevisionChange {
  field: string
  before: string | null
  after: string | null
}

export interface Revision {
  id: number
  seq: number
  level: ReportLevel
  author: PersonRef
  created_at: string
  signed: boolean
  findings: string | null
  impression: string | null
  recommendation: string | null
  positive: '阴性' | '阳性' | null
  changes: RevisionChange[]
}

export interface Report {
  id: number
  case_id: number
  status: string
  version: number
  voided: boolean
  lock: { holder: PersonRef; expires_at: string } | null
  current: Revision | null
  printed_at: string | null
  print_count: number
}

export interface CaseDetail extends CaseItem {
  clinical_info: string
  dispatch_mode: string | null
  target_group: CodeName | string | null
  report: Report | null
  history: CaseHistoryEntry[]
  deployment: { id: number; process_id: string; version: number } | null
}

export interface CaseDiagram {
  bpmn_xml: string
  active: string[]
  completed: string[]
}

export interface NewCase {
  patient: {
    patient_no: string
    name: string
    sex: Sex
    birth_date: string
    phone?: string
    id_number?: string
  }
  exams: {
    modality: Modality
    body_part: string
    exam_item: string
    exam_time: string
    accession_no?: string
  }[]
  emergency: boolean
  clinical_info: string
}

export interface TaskItem {
  id: number
  case_id: number
  case_no: string
  task_name: string
  title: string
  lane_role: string | null
  assignee: PersonRef | null
  in_pool: boolean
  group: CodeName | null
  emergency: boolean
  patient_name: string
  modality: string
  body_part: string
  requesting_institution: { code: string; name: string }
  created_at: string
  claimed_at: string | null
  /** 剩余时限 (UX.md R3): the case's request time, due time and limit; null for tasks of other processes. */
  case_created_at?: string | null
  due_at?: string | null
  tat_limit_minutes?: number | null
}

export interface TaskForm {
  task: TaskItem
  schema: Record<string, unknown>
  ui_schema: Record<string, unknown> | null
  data: Record<string, unknown> | null
  report: Report | null
}

export interface Doctor {
  id: number
  full_name: string
  username: string
  institution: InstitutionRef
  roles: string[]
}

export interface WorkGroup {
  code: string
  name: string
  members: number
}

export interface ProcessDeployment {
  id: number
  process_id: string
  version: number
  content_hash: string
  deployed_at: string
  deployed_by: ActorRef
  source: string
  running_cases: number
  latest: boolean
}

export interface ProcessDeploymentDetail {
  id: number
  process_id: string
  version: number
  bpmn_xml: string
  dmn: Record<string, string>
  forms: string[]
}

export interface ProcessValidation {
  ok: boolean
  errors: { element: string | null; message: string }[]
}
