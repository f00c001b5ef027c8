/**
 * Every key binding of the app, declared in one place (issue 14). A screen that owns a scope
 * registers the handlers with `useKeyScope`; the clinical issues (viewer, report editor,
 * registration) add their bindings here.
 */
import { i18n } from '@/i18n'
import { defineBinding } from './keymap'
import { VIEWER } from './viewerBindings'

/** Report-editor bindings of templates and phrases (issue 17; REQ: RPT-03, RPT-07; UX R5, R6, R7). */
const r = (id: string, keys: string[], key: string, args?: Record<string, unknown>) =>
  defineBinding({
    id: `report-editor.${id}`,
    keys,
    scope: 'report-editor',
    description: args ? i18n.global.t(key, args) : i18n.global.t(key),
    descriptionKey: key,
    descriptionArgs: args,
    inEditable: true,
  })

/** Keys 1–9 with a `[A/B]` choice selected: its option 1–9 (one binding a key; the overlay shows the first). */
export const CHOICE_BINDINGS = Array.from({ length: 9 }, (_, i) =>
  r(`choose-${i + 1}`, [String(i + 1)], i === 0 ? 'templates.keys.chooseFirst' : 'templates.keys.choose', { n: i + 1 }),
)
/** Ctrl+1 … Ctrl+9: the user's phrase with that shortcut (UX R6). */
export const PHRASE_BINDINGS = Array.from({ length: 9 }, (_, i) =>
  r(`phrase-${i + 1}`, [`Ctrl+${i + 1}`], i === 0 ? 'templates.keys.phraseFirst' : 'templates.keys.phrase', { n: i + 1 }),
)

const REPORT_TEMPLATES = {
  reportNextMarker: r('next-marker', ['Tab'], 'templates.keys.nextMarker'),
  reportPrevMarker: r('prev-marker', ['Shift+Tab'], 'templates.keys.prevMarker'),
  reportPhraseSearch: r('phrase-search', ['/'], 'templates.keys.phraseSearch'),
  reportTemplateSearch: r('template-search', ['Alt+T'], 'templates.keys.templateSearch'),
}

export const B = {
  help: defineBinding({ id: 'global.help', keys: ['?'], scope: 'global', description: '显示全部快捷键' }),

  listNext: defineBinding({ id: 'list.next', keys: ['ArrowDown'], scope: 'list', description: '选择下一行' }),
  listPrev: defineBinding({ id: 'list.prev', keys: ['ArrowUp'], scope: 'list', description: '选择上一行' }),
  listOpen: defineBinding({ id: 'list.open', keys: ['Enter'], scope: 'list', description: '打开选中的行' }),

  formNextField: defineBinding({
    id: 'form.next-field',
    keys: ['Enter'],
    scope: 'form',
    description: '跳到下一个输入项（扫码枪录入后自动跳转）',
    inEditable: true,
    capture: true,
    keepDefault: true,
  }),
  formSubmit: defineBinding({
    id: 'form.submit',
    keys: ['Ctrl+S'],
    scope: 'form',
    description: '校验并提交申请',
    inEditable: true,
  }),

  reportSave: defineBinding({
    id: 'report-editor.save',
    keys: ['Ctrl+S'],
    scope: 'report-editor',
    description: '保存草稿',
    inEditable: true,
  }),
  reportSubmit: defineBinding({
    id: 'report-editor.submit',
    keys: ['Ctrl+Enter'],
    scope: 'report-editor',
    description: '提交 / 签名',
    inEditable: true,
  }),

  ...REPORT_TEMPLATES,

  // ---- viewer (issue 16, UX R7): every viewer tool has a key; `K` and Ctrl+S belong to the key-image/save helper.
  ...VIEWER,
  // the viewer's saved marks and key images (web/src/viewer/persist; REQ: VIEW-08, RPT-05, UX R13)
  viewerSaveMarks: defineBinding({ id: 'viewer.save-marks', keys: ['Ctrl+S'], scope: 'viewer', description: i18n.global.t('viewer.keys.saveMarks') }),
  viewerKeyImage: defineBinding({ id: 'viewer.key-image', keys: ['K'], scope: 'viewer', description: i18n.global.t('viewer.keys.keyImage') }),
} as const
