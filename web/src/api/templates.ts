/**
 * Report templates and phrases (issue 17; REQ: RPT-03, RPT-06, RPT-07, DICT-02; UX R5, R6). The contract is
 * /work/notes/templates-api.md: a tree 设备类型 → 检查部位 per tab, paged summaries, full templates with their
 * sections, favorites, use counts, insert/replace on the server's representation, and the phrase library.
 */
import { http } from './http'
import type { InstitutionRef, Paged } from './types'

export const TEMPLATE_TABS = ['favorite', 'private', 'shared', 'all'] as const
export type TemplateTab = (typeof TEMPLATE_TABS)[number]
export type TemplateKind = 'single' | 'combination'
export type TemplateScope = 'private' | 'institution' | 'public'
export type TemplateCategory = 'normal' | 'abnormal'
export const MODALITIES = ['CT', 'MR', 'DR', 'CR', 'DX', 'US', 'MG', 'RF', 'XA', 'NM', 'PT', 'OT'] as const
export type Positive = '阴性' | '阳性' | null

/** The report fields a template fills, in the editor's order. */
export const REPORT_TEXT_FIELDS = ['findings', 'impression', 'recommendation'] as const
export type ReportTextField = (typeof REPORT_TEXT_FIELDS)[number]

export interface ReportTexts {
  findings: string
  impression: string
  recommendation: string
  positive: Positive
}

export interface TemplateSections {
  exam_method: string | null
  findings: string | null
  impression: string | null
  recommendation: string | null
  positive: Positive
}

export interface SectionsBody {
  exam_method: string
  findings: string
  impression: string
  recommendation: string
  positive: Positive
}

export interface TemplateSummary {
  id: number
  name: string
  kind: TemplateKind
  scope: TemplateScope
  category: TemplateCategory
  modality: string
  body_part: string
  favorite: boolean
  owner: { id: number; full_name: string } | null
  institution: InstitutionRef | null
  updated_at: string
  version: number
}

export interface Template extends TemplateSummary {
  sections: TemplateSections
  parts: TemplateSummary[]
  fields: unknown[]
}

export interface TemplateTreeNode {
  modality: string
  label: string
  count: number
  parts: { body_part: string; count: number }[]
}

/** A node of the 设备类型 → 检查部位 el-tree (the editor's panel and 模板管理 show the same tree). */
export interface TemplateTreeItem {
  id: string
  label: string
  count: number
  modality: string
  body_part?: string
  children?: TemplateTreeItem[]
}

export function templateTreeItems(tree: TemplateTreeNode[]): TemplateTreeItem[] {
  return tree.map((m) => ({
    id: m.modality,
    label: m.label || m.modality,
    count: m.count,
    modality: m.modality,
    children: m.parts.map((p) => ({
      id: `${m.modality}/${p.body_part}`,
      label: p.body_part,
      count: p.count,
      modality: m.modality,
      body_part: p.body_part,
    })),
  }))
}

export interface TemplateQuery {
  tab?: TemplateTab
  modality?: string
  body_part?: string
  q?: string
  kind?: TemplateKind
  page?: number
  page_size?: number
}

export interface TemplateBody {
  name: string
  kind: TemplateKind
  scope: TemplateScope
  category: TemplateCategory
  modality: string
  body_part: string
  /** Texts are strings ('' for none): the server refuses null sections. */
  sections?: SectionsBody
  parts?: number[]
  version?: number
}

export interface Cursor {
  field: ReportTextField
  offset: number
}

export interface Phrase {
  id: number
  text: string
  scope: 'private' | 'shared'
  shortcut: number | null
  pinyin: string
}

export interface PhraseBody {
  text: string
  scope: 'private' | 'shared'
  shortcut: number | null
}

function clean<T extends object>(q: T): Partial<T> {
  return Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined && v !== null && v !== '')) as Partial<T>
}

export async function getTemplateTree(q: { tab?: TemplateTab; q?: string; modality?: string } = {}): Promise<TemplateTreeNode[]> {
  const { data } = await http.get<{ tree: TemplateTreeNode[] }>('/templates/tree', { params: clean(q) })
  return data.tree
}

export async function listTemplates(q: TemplateQuery = {}): Promise<Paged<TemplateSummary>> {
  const { data } = await http.get<Paged<TemplateSummary>>('/templates', { params: clean(q) })
  return data
}

export async function getTemplate(id: number): Promise<Template> {
  const { data } = await http.get<Template>(`/templates/${id}`)
  return data
}

/** Errors (400 validation_error with details, 403) are rendered by the caller. */
export async function createTemplate(body: TemplateBody): Promise<Template> {
  const { data } = await http.post<Template>('/templates', body, { silent: true })
  return data
}

/** 409 `stale_version` when someone saved in between. */
export async function updateTemplate(id: number, body: TemplateBody): Promise<Template> {
  const { data } = await http.put<Template>(`/templates/${id}`, body, { silent: true })
  return data
}

/** 409 `template_in_use` names the combinations that use it. */
export async function deleteTemplate(id: number): Promise<void> {
  await http.delete(`/templates/${id}`, { silent: true })
}

export async function setFavorite(id: number, favorite: boolean): Promise<void> {
  if (favorite) await http.put(`/templates/${id}/favorite`)
  else await http.delete(`/templates/${id}/favorite`)
}

/** Bumps the caller's use count (orders 常用★); best effort. */
export async function markTemplateUsed(id: number): Promise<void> {
  await http.post(`/templates/${id}/use`, undefined, { silent: true })
}

/** Insert at the cursor (others appended) or replace: the server's representation is the reference (RPT-03). */
export async function applyTemplate(
  id: number,
  mode: 'insert' | 'replace',
  report: ReportTexts,
  cursor: Cursor | null,
): Promise<ReportTexts> {
  const { data } = await http.post<{ report: Partial<ReportTexts> }>(`/templates/${id}/apply`, { mode, report, cursor })
  const r = data.report
  return {
    findings: r.findings ?? '',
    impression: r.impression ?? '',
    recommendation: r.recommendation ?? '',
    positive: r.positive === '阴性' || r.positive === '阳性' ? r.positive : null,
  }
}

export async function listPhrases(q = ''): Promise<Phrase[]> {
  const { data } = await http.get<{ items: Phrase[] }>('/phrases', { params: clean({ q }) })
  return data.items
}

/** 409 `shortcut_taken` when another phrase of the user (or a shared one) has that Ctrl+digit. */
export async function createPhrase(body: PhraseBody): Promise<Phrase> {
  const { data } = await http.post<Phrase>('/phrases', body, { silent: true })
  return data
}

export async function updatePhrase(id: number, body: PhraseBody): Promise<Phrase> {
  const { data } = await http.put<Phrase>(`/phrases/${id}`, body, { silent: true })
  return data
}

export async function deletePhrase(id: number): Promise<void> {
  await http.delete(`/phrases/${id}`)
}
