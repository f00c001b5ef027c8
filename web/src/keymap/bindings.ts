/**
 * Every key binding of the app, declared in one place (issue 14). A screen that owns a scope
 * registers the handlers with `useKeyScope`; the clinical issues (viewer, report editor,
 * registration) add their bindings here.
 */
import { i18n } from '@/i18n'
import { defineBinding } from './keymap'
import { VIEWER } from './viewerBindings'

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

  // ---- viewer (issue 16, UX R7): every viewer tool has a key; `K` and Ctrl+S belong to the key-image/save helper.
  ...VIEWER,
  // the viewer's saved marks and key images (web/src/viewer/persist; REQ: VIEW-08, RPT-05, UX R13)
  viewerSaveMarks: defineBinding({ id: 'viewer.save-marks', keys: ['Ctrl+S'], scope: 'viewer', description: i18n.global.t('viewer.keys.saveMarks') }),
  viewerKeyImage: defineBinding({ id: 'viewer.key-image', keys: ['K'], scope: 'viewer', description: i18n.global.t('viewer.keys.keyImage') }),
} as const
