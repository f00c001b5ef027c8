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
}

export interface Permission {
  code: string
  name: string
  kind: 'menu' | 'function'
  parent: string | null
  domain: string
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
