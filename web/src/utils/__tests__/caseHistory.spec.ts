/**
 * The case history and the notification list name every code the API sends (issue 14): events, BPMN task ids,
 * detail keys and values, notification kinds and severities — in zh-CN and en-US. The codes are read from the
 * server's sources, so a new event, task or kind without a label fails here.
 */
import { describe, expect, it } from 'vitest'
import { createAppI18n, type AppLocale } from '@/i18n'
import type { CaseHistoryEntry } from '@/api/types'
import {
  durationText,
  historyDetailsText,
  historyEventName,
  historyTaskName,
  type Translator,
} from '@/utils/caseHistory'
import { notificationKindName, notificationSeverityName } from '@/utils/codeLabels'
import schemasPy from '../../../../api/cases/schemas.py?raw'
import kindsPy from '../../../../engine/notifications/kinds.py?raw'

const bpmnFiles = import.meta.glob('../../../../processes/*/*.bpmn', { query: '?raw', import: 'default', eager: true })

function translator(locale: AppLocale): Translator {
  const { t, te } = createAppI18n(locale).global
  return { t: (key, named) => t(key, named ?? {}), te: (key) => te(key, locale) }
}

/** The keys of EVENT_NAMES in api/cases/schemas.py. */
function serverEvents(): string[] {
  const block = /EVENT_NAMES = \{([\s\S]*?)\n\}/.exec(schemasPy)
  expect(block).not.toBeNull()
  return [...block![1].matchAll(/^\s*"([a-z_0-9]+)":/gm)].map((m) => m[1])
}

/** The ids of the tasks and events of every BPMN process under processes/. */
function bpmnTasks(): string[] {
  const ids = new Set<string>()
  for (const xml of Object.values(bpmnFiles) as string[]) {
    const tags = /<bpmn:(userTask|serviceTask|businessRuleTask|scriptTask|boundaryEvent|intermediateCatchEvent) id="([^"]+)"/g
    for (const m of xml.matchAll(tags)) ids.add(m[2])
  }
  return [...ids]
}

function serverKinds(): string[] {
  return [...kindsPy.matchAll(/register\(Kind\("([a-z_]+)"/g)].map((m) => m[1])
}

// Every detail key the engine writes into the case history (engine/cases/*.py `event(…)` calls).
const DETAILS: Record<string, unknown> = {
  details_exams: ['EX001', 'EX002'],
  due_at: '2026-03-01T02:30:00+00:00',
  emergency: true,
  reason: '左右侧写反',
  back_to: 'draft_report',
  version: 2,
  from_version: 1,
  to_version: 3,
  to: '王医生',
  status: 'incident',
  query: 42,
  question: '请补充既往病史',
  due: 'PT24H',
  answer: '',
  unavailable: true,
}

describe('case history labels', () => {
  it('names every event, task and detail code in both locales', () => {
    const events = serverEvents()
    const tasks = bpmnTasks()
    expect(events).toContain('created')
    expect(tasks).toEqual(expect.arrayContaining(['draft_report', 'sla_timer', 'answer_query', 'due_timer']))
    for (const locale of ['zh-CN', 'en-US'] as const) {
      const tr = translator(locale)
      const missing = [
        ...events.filter((e) => !tr.te(`caseHistory.events.${e}`)).map((e) => `events.${e}`),
        ...tasks.filter((x) => !tr.te(`caseHistory.tasks.${x}`)).map((x) => `tasks.${x}`),
        ...Object.keys(DETAILS)
          .filter((k) => k !== 'query' && !tr.te(`caseHistory.details.${k}`))
          .map((k) => `details.${k}`),
        ...['open', 'completed', 'incident', 'cancelled'].filter((s) => !tr.te(`caseHistory.statuses.${s}`)),
      ]
      expect(missing, locale).toEqual([])
    }
  })

  it('shows labels, never the raw keys and values (zh-CN)', () => {
    const tr = translator('zh-CN')
    const text = historyDetailsText(tr, DETAILS)
    expect(text).toBe(
      '需补充：请补充既往病史；无法提供；原因：左右侧写反；答复时限：24小时；到期时间：2026-03-01 10:30；' +
        '检查：EX001、EX002；急诊；退回到：书写初步报告；转给：王医生；报告版本：2；原流程版本：1；新流程版本：3；' +
        '流程状态：流程异常',
    )
    for (const raw of ['details_exams', 'due_at', 'back_to', 'draft_report', 'incident', 'PT24H', 'query', '42', 'true']) {
      expect(text).not.toContain(raw)
    }
    const entry: CaseHistoryEntry = {
      ts: '2026-03-01T00:00:00Z',
      event: 'clinical_query_overdue',
      event_name: '临床资料补充超时',
      actor: null,
      task_title: 'answer_query',
      details: { query: 42 },
    }
    expect(historyEventName(tr, entry)).toBe('临床资料补充超时')
    expect(historyTaskName(tr, entry.task_title)).toBe('答复临床资料补充')
    expect(historyDetailsText(tr, entry.details)).toBe('') // the query's id alone says nothing to a person
    expect(historyDetailsText(tr, { emergency: false, unavailable: false, answer: '无手术史' })).toBe('答复：无手术史')
  })

  it('speaks English in en-US', () => {
    const tr = translator('en-US')
    expect(historyEventName(tr, { event: 'clinical_query_overdue', event_name: '临床资料补充超时' })).toBe(
      'Clinical information request overdue',
    )
    expect(historyTaskName(tr, 'sla_timer')).toBe('Report time limit')
    const text = historyDetailsText(tr, { details_exams: ['EX001'], due: 'PT48H', back_to: 'report_level2' })
    expect(text).toBe('Answer within: 48 h; Exams: EX001; Returned to: Report confirmation')
    expect(text).not.toMatch(/[\u4e00-\u9fff]/)
  })

  it("names a requesting hospital's public milestones by UX R2's statuses (UX R25)", () => {
    expect(historyEventName(translator('zh-CN'), { event: 'status_pending_review', event_name: '待审核' })).toBe('待审核')
    expect(historyEventName(translator('en-US'), { event: 'status_corrected', event_name: '已更正' })).not.toMatch(/[\u4e00-\u9fff]/)
  })

  it('falls back to the server name or the code for what no locale knows', () => {
    const tr = translator('zh-CN')
    expect(historyEventName(tr, { event: 'future_event', event_name: '将来的事件' })).toBe('将来的事件')
    expect(historyTaskName(tr, 'new_task')).toBe('new_task')
    expect(historyDetailsText(tr, { new_key: 'x', due: 'PT1H' })).toBe('答复时限：1小时；new_key：x')
  })

  it('writes ISO 8601 durations in words', () => {
    const zh = translator('zh-CN')
    expect(durationText(zh, 'PT24H')).toBe('24小时')
    expect(durationText(zh, 'P1DT2H30M')).toBe('1天2小时30分钟')
    expect(durationText(zh, 'PT5S')).toBe('5秒')
    expect(durationText(zh, 'PT')).toBe('PT')
    expect(durationText(zh, 'tomorrow')).toBe('tomorrow')
    expect(durationText(translator('en-US'), 'PT72H')).toBe('72 h')
  })
})

describe('notification labels', () => {
  it('names every registered kind and each severity in both locales', () => {
    const kinds = serverKinds()
    expect(kinds).toEqual(expect.arrayContaining(['security_alert', 'overdue', 'clinical_info_incomplete']))
    for (const locale of ['zh-CN', 'en-US'] as const) {
      const tr = translator(locale)
      expect(kinds.filter((k) => !tr.te(`notifications.kinds.${k}`)), locale).toEqual([])
      for (const sev of ['info', 'warning', 'critical']) expect(tr.te(`notifications.severities.${sev}`)).toBe(true)
    }
    const zh = translator('zh-CN')
    const item = { kind: 'overdue', kind_name: 'x', severity: 'warning' as const, severity_name: 'y' }
    expect([notificationKindName(zh, item), notificationSeverityName(zh, item)]).toEqual(['超时提醒', '提醒'])
    const en = translator('en-US')
    expect([notificationKindName(en, item), notificationSeverityName(en, item)]).toEqual(['Overdue', 'Reminder'])
    expect(notificationKindName(zh, { kind: 'new_kind', kind_name: '新消息' })).toBe('新消息')
  })
})
