// /api/imaging: DICOM devices (IMG-02), archive studies, SR text (DCM-06), conflicts (DSEC-06),
// unmatched studies (IMG-06) and the SCU actions (DCM-03/04).
import { cleanParams, http } from './http'
import type { InstitutionRef, Paged } from './types'

export type NodeOperation = 'echo' | 'store' | 'find' | 'move' | 'get' | 'worklist' | 'mpps'

export interface DicomNode {
  id: number
  aet: string
  host: string
  port: number | null
  institution: InstitutionRef
  allow: NodeOperation[]
  tls_required: boolean
  cert_fingerprint: string | null
  enabled: boolean
  description: string
  created_at: string
  updated_at: string
}

export interface NodeInput {
  aet: string
  host: string
  port: number | null
  institution_id: number
  allow: NodeOperation[]
  tls_required: boolean
  cert_fingerprint: string | null
  enabled: boolean
  description: string
}

export type NodePatch = Partial<Omit<NodeInput, 'institution_id'>>

export interface EchoResult {
  ok: boolean
  status: number | null
  message: string
  elapsed_ms: number
}

export interface TransferResult {
  ok: boolean
  status: number | null
  message: string
  completed: number
  failed: number
  warning: number
  elapsed_ms: number
}

export interface FindQuery {
  level?: 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE'
  patient_id?: string
  patient_name?: string
  accession_number?: string
  study_date?: string
  modality?: string
  limit?: number
}

export interface FindMatch {
  patient_id?: string
  patient_name?: string
  study_instance_uid?: string
  study_date?: string
  accession_number?: string
  study_description?: string
  modalities?: string[]
  instance_count?: number | null
}

export interface FindResult {
  ok: boolean
  status: number | null
  message: string
  items: FindMatch[]
  truncated: boolean
}

export interface Study {
  id: number
  study_instance_uid: string
  patient_id: string
  patient_name: string
  patient_sex: string
  patient_birth_date: string
  study_date: string
  study_time: string
  accession_number: string
  study_description: string
  modalities: string[]
  institution: InstitutionRef
  series_count: number
  instance_count: number
  exam_id: number | null
  created_at: string
}

export interface InstanceItem {
  id: number
  sop_instance_uid: string
  sop_class_uid: string
  sop_class_name: string
  transfer_syntax_uid: string
  instance_number: number | null
  size: number
  received_at: string
  is_sr: boolean
}

export interface SeriesItem {
  id: number
  series_instance_uid: string
  modality: string
  series_number: number | null
  body_part: string
  series_description: string
  instances: InstanceItem[]
}

export interface StudyDetail extends Study {
  referring_physician: string
  source_aet: string | null
  series: SeriesItem[]
}

export interface StudyQuery {
  q?: string
  modality?: string
  date_from?: string
  date_to?: string
  page?: number
  page_size?: number
}

export interface SrItem {
  relationship: string | null
  value_type: string
  concept: string | null
  text: string | null
  children: SrItem[]
}

export interface SrDocument {
  instance_id: number
  sop_class_uid: string
  title: string | null
  completion_flag: string | null
  verification_flag: string | null
  content: SrItem[]
  text: string
}

export interface Conflict {
  id: number
  status: 'open' | 'resolved'
  institution: InstitutionRef
  sop_instance_uid: string
  sop_class_uid: string
  size: number
  sha256: string
  calling_aet: string
  received_at: string
  instance_id: number
  original_size: number
  original_sha256: string
  original_received_at: string | null
  study_id: number
  study_instance_uid: string
  patient_name: string
  resolved_by: string | null
  resolved_at: string | null
  note: string | null
}

export interface Unmatched {
  id: number
  reason: string
  reason_name: string
  description: string
  created_at: string
  resolved_at: string | null
  institution: InstitutionRef
  study: Study
}

export async function listNodes(query: { q?: string; enabled?: '' | 'true' | 'false' } = {}): Promise<DicomNode[]> {
  const { data } = await http.get<DicomNode[]>('/imaging/nodes', { params: cleanParams({ ...query }) })
  return data
}

export async function createNode(body: NodeInput): Promise<DicomNode> {
  const { data } = await http.post<DicomNode>('/imaging/nodes', body, { silent: true })
  return data
}

export async function updateNode(id: number, patch: NodePatch): Promise<DicomNode> {
  const { data } = await http.patch<DicomNode>(`/imaging/nodes/${id}`, patch, { silent: true })
  return data
}

export async function echoNode(id: number): Promise<EchoResult> {
  const { data } = await http.post<EchoResult>(`/imaging/nodes/${id}/echo`)
  return data
}

export async function findOnNode(id: number, query: FindQuery): Promise<FindResult> {
  const { data } = await http.post<FindResult>(`/imaging/nodes/${id}/find`, cleanParams({ ...query }))
  return data
}

export async function retrieveFromNode(
  id: number,
  body: { study_instance_uid: string; method: 'move' | 'get' },
): Promise<TransferResult> {
  const { data } = await http.post<TransferResult>(`/imaging/nodes/${id}/retrieve`, body)
  return data
}

export async function listStudies(query: StudyQuery): Promise<Paged<Study>> {
  const { data } = await http.get<Paged<Study>>('/imaging/studies', { params: cleanParams({ ...query }) })
  return data
}

export async function getStudy(id: number): Promise<StudyDetail> {
  const { data } = await http.get<StudyDetail>(`/imaging/studies/${id}`)
  return data
}

export async function sendStudy(id: number, nodeId: number): Promise<TransferResult> {
  const { data } = await http.post<TransferResult>(`/imaging/studies/${id}/send`, { node_id: nodeId })
  return data
}

export async function getSr(instanceId: number): Promise<SrDocument> {
  const { data } = await http.get<SrDocument>(`/imaging/instances/${instanceId}/sr`)
  return data
}

export async function listConflicts(query: {
  status?: '' | 'open' | 'resolved'
  page?: number
  page_size?: number
}): Promise<Paged<Conflict>> {
  const { data } = await http.get<Paged<Conflict>>('/imaging/conflicts', { params: cleanParams({ ...query }) })
  return data
}

export async function resolveConflict(id: number, note: string): Promise<Conflict> {
  const { data } = await http.post<Conflict>(`/imaging/conflicts/${id}/resolve`, { note })
  return data
}

export async function listUnmatched(query: {
  status?: 'open' | 'resolved'
  page?: number
  page_size?: number
}): Promise<Paged<Unmatched>> {
  const { data } = await http.get<Paged<Unmatched>>('/imaging/unmatched', { params: cleanParams({ ...query }) })
  return data
}

// ---- routing rules (DCM-02, IMG-03, IMG-07), compression policies (IMG-04) ----
export interface CompressionPolicy {
  code: string
  name: string
  lossy: boolean
}

export interface RoutingRuleInput {
  name: string
  priority: number
  enabled: boolean
  stop: boolean
  node_ids: number[]
  institution_ids: number[]
  modalities: string[]
  body_parts: string[]
  sop_classes: string[]
  study_description_contains: string
  series_description_contains: string
  storage_target_id: number | null
  storage_compression: string
  forward_node_ids: number[]
  forward_compression: string
}

export interface RoutingRule extends RoutingRuleInput {
  id: number
  created_at: string
  updated_at: string
}

export async function listCompressionPolicies(): Promise<CompressionPolicy[]> {
  const { data } = await http.get<CompressionPolicy[]>('/imaging/compression-policies')
  return data
}

export async function listRules(): Promise<RoutingRule[]> {
  const { data } = await http.get<RoutingRule[]>('/imaging/routing/rules')
  return data
}

export async function createRule(body: RoutingRuleInput): Promise<RoutingRule> {
  const { data } = await http.post<RoutingRule>('/imaging/routing/rules', body, { silent: true })
  return data
}

export async function updateRule(id: number, patch: Partial<RoutingRuleInput>): Promise<RoutingRule> {
  const { data } = await http.patch<RoutingRule>(`/imaging/routing/rules/${id}`, patch, { silent: true })
  return data
}

export async function deleteRule(id: number): Promise<void> {
  await http.delete(`/imaging/routing/rules/${id}`)
}

// ---- forward queue (IMG-08) ----
export type ForwardState = 'pending' | 'sending' | 'done' | 'failed'

export interface ForwardJob {
  id: number
  state: ForwardState
  attempts: number
  next_attempt_at: string | null
  last_error: string
  compression: string
  rule_id: number | null
  node: { id: number; aet: string }
  instance_id: number
  sop_instance_uid: string
  study_id: number | null
  study_instance_uid: string
  patient_name: string
  created_at: string
  updated_at: string
}

export interface ForwardJobPage extends Paged<ForwardJob> {
  counts: Record<ForwardState, number>
}

export async function listForwardJobs(query: {
  state?: '' | ForwardState
  node_id?: number | null
  page?: number
  page_size?: number
}): Promise<ForwardJobPage> {
  const { data } = await http.get<ForwardJobPage>('/imaging/forward/jobs', { params: cleanParams({ ...query }) })
  return data
}

export async function retryForwardJob(id: number): Promise<ForwardJob> {
  const { data } = await http.post<ForwardJob>(`/imaging/forward/jobs/${id}/retry`)
  return data
}

export interface ForwardResult {
  instances: number
  queued: number
  already_sent: number
}

export async function forwardStudy(id: number, nodeId: number, compression = ''): Promise<ForwardResult> {
  const { data } = await http.post<ForwardResult>(`/imaging/studies/${id}/forward`, { node_id: nodeId, compression })
  return data
}

// ---- storage targets and tasks (IMG-09) ----
export interface StorageTarget {
  id: number
  code: string
  name: string
  kind: string
  root_path: string
  enabled: boolean
  is_default: boolean
  builtin: boolean
  instance_count: number
  created_at: string
}

export type StorageTaskKind = 'compare' | 'sync' | 'migrate'
export type StorageTaskState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled'

export interface StorageTask {
  id: number
  kind: StorageTaskKind
  source: { id: number; code: string; name: string } | null
  target: { id: number; code: string; name: string } | null
  filter: Record<string, unknown>
  state: StorageTaskState
  total: number
  done: number
  percent: number
  copied: number
  missing: number
  mismatched: number
  errors: number
  last_error: string
  created_by: string
  created_at: string
  started_at: string | null
  finished_at: string | null
}

export async function listStorageTargets(): Promise<StorageTarget[]> {
  const { data } = await http.get<StorageTarget[]>('/imaging/storage/targets')
  return data
}

export async function createStorageTarget(body: {
  code: string
  name: string
  root_path: string
  is_default: boolean
}): Promise<StorageTarget> {
  const { data } = await http.post<StorageTarget>('/imaging/storage/targets', body, { silent: true })
  return data
}

export async function setDefaultStorageTarget(id: number): Promise<StorageTarget> {
  const { data } = await http.post<StorageTarget>(`/imaging/storage/targets/${id}/default`)
  return data
}

export async function listStorageTasks(): Promise<StorageTask[]> {
  const { data } = await http.get<StorageTask[]>('/imaging/storage/tasks')
  return data
}

export async function createStorageTask(body: {
  kind: StorageTaskKind
  source_id: number
  target_id: number
  filter?: { modality?: string; institution_id?: number }
}): Promise<StorageTask> {
  const { data } = await http.post<StorageTask>('/imaging/storage/tasks', body, { silent: true })
  return data
}
