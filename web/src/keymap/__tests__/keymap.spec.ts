import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { defineComponent, h, ref } from 'vue'
import ElementPlus from 'element-plus'
import { createAppI18n } from '@/i18n'
import {
  activateScope,
  B,
  defineBinding,
  dispatchKey,
  eventChord,
  groupedBindings,
  helpState,
  isTextField,
  KeymapError,
  normalizeChord,
  undefineBinding,
} from '@/keymap'
import KeymapHelp from '../KeymapHelp.vue'

const offs: (() => void)[] = []
function scope(...args: Parameters<typeof activateScope>) {
  offs.push(activateScope(...args))
}
function press(target: EventTarget, key: string, opts: KeyboardEventInit = {}) {
  const e = new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true, ...opts })
  target.dispatchEvent(e)
  return e
}

afterEach(() => {
  while (offs.length) offs.pop()!()
  undefineBinding('test.one')
  undefineBinding('test.two')
  helpState.open = false
  document.body.innerHTML = ''
})

describe('chords', () => {
  it('normalises declared keys and events the same way', () => {
    expect(normalizeChord('ctrl+s')).toBe('Ctrl+S')
    expect(normalizeChord('Meta+Enter')).toBe('Ctrl+Enter')
    expect(normalizeChord('shift+alt+tab')).toBe('Alt+Shift+Tab')
    expect(eventChord(new KeyboardEvent('keydown', { key: 's', metaKey: true }))).toBe('Ctrl+S')
    // `?` needs Shift on most layouts and still means `?`; Shift counts for letters.
    expect(eventChord(new KeyboardEvent('keydown', { key: '?', shiftKey: true }))).toBe('?')
    expect(eventChord(new KeyboardEvent('keydown', { key: 'S', shiftKey: true }))).toBe('Shift+S')
    expect(() => normalizeChord('Hyper+S')).toThrow(KeymapError)
  })
})

describe('declarations: a key means one thing in one scope', () => {
  it('refuses a second binding of the same key in the same scope, and a reused id', () => {
    expect(() =>
      defineBinding({ id: 'test.one', keys: ['ctrl+s'], scope: 'report-editor', description: '另一个保存' }),
    ).toThrow(/Ctrl\+S.*报告编辑.*report-editor\.save/)
    expect(() => defineBinding({ id: 'list.next', keys: ['J'], scope: 'list', description: '重复' })).toThrow(
      KeymapError,
    )
    expect(() =>
      defineBinding({ id: 'test.one', keys: ['F12', 'f12'], scope: 'viewer', description: '重复键' }),
    ).toThrow(KeymapError)
    // The same key in another scope is fine: Ctrl+S is 保存草稿 in the report editor, 提交 in the form.
    expect(B.reportSave.keys).toEqual(B.formSubmit.keys)
    // (the viewer scope has ArrowDown itself since issue 16: F12 is free there)
    defineBinding({ id: 'test.one', keys: ['F12'], scope: 'viewer', description: '测试' })
  })

  it('a handler must name a binding declared in its scope', () => {
    expect(() => activateScope('list', { 'no.such': () => {} })).toThrow(/未声明/)
    expect(() => activateScope('list', { [B.reportSave.id]: () => {} })).toThrow(/报告编辑/)
  })
})

describe('scopes follow focus and route', () => {
  it('an element scope acts only on keys typed inside its element; inner scopes first', () => {
    const outer = document.body.appendChild(document.createElement('div'))
    const inner = outer.appendChild(document.createElement('div'))
    const elsewhere = document.body.appendChild(document.createElement('div'))
    const calls: string[] = []
    scope('list', { [B.listNext.id]: () => void calls.push('outer') }, { el: () => outer })
    scope('list', { [B.listNext.id]: () => void calls.push('inner') }, { el: () => inner })
    const e = press(inner, 'ArrowDown')
    expect(calls).toEqual(['inner'])
    expect(e.defaultPrevented).toBe(true)
    press(outer, 'ArrowDown')
    expect(calls).toEqual(['inner', 'outer'])
    const e2 = press(elsewhere, 'ArrowDown')
    expect(calls).toEqual(['inner', 'outer'])
    expect(e2.defaultPrevented).toBe(false)
  })

  it('a page scope is active while registered; a handler returning false passes the key on', () => {
    const calls: string[] = []
    const el = document.body.appendChild(document.createElement('div'))
    scope('list', { [B.listOpen.id]: () => false }, { el: () => el })
    scope('global', { [B.help.id]: () => void calls.push('help') })
    expect(dispatchKey(new KeyboardEvent('keydown', { key: 'Enter' }), false)).toBeNull()
    const off = activateScope('report-editor', { [B.reportSave.id]: () => void calls.push('save') })
    press(window, 's', { ctrlKey: true })
    expect(calls).toEqual(['save'])
    off()
    press(window, 's', { ctrlKey: true })
    expect(calls).toEqual(['save'])
    press(el, '?', { shiftKey: true })
    expect(calls).toEqual(['save', 'help'])
  })
})

describe('typing in a text field never triggers a command', () => {
  it('knows what a text field is', () => {
    const input = document.createElement('input')
    const box = document.createElement('input')
    box.type = 'checkbox'
    const editable = document.createElement('div')
    editable.setAttribute('contenteditable', 'true')
    const child = editable.appendChild(document.createElement('span'))
    document.body.append(input, box, editable)
    expect(isTextField(input)).toBe(true)
    expect(isTextField(document.createElement('textarea'))).toBe(true)
    expect(isTextField(child)).toBe(true)
    expect(isTextField(box)).toBe(false)
    expect(isTextField(document.body)).toBe(false)
    expect(isTextField(window)).toBe(false)
  })

  it('? in an input, textarea or contenteditable does nothing; Ctrl+S marked for editors still saves', () => {
    const calls: string[] = []
    scope('global', { [B.help.id]: () => void calls.push('help') })
    scope('report-editor', { [B.reportSave.id]: () => void calls.push('save') })
    const input = document.body.appendChild(document.createElement('input'))
    const area = document.body.appendChild(document.createElement('textarea'))
    const editable = document.body.appendChild(document.createElement('div'))
    editable.setAttribute('contenteditable', 'true')
    for (const el of [input, area, editable]) {
      const e = press(el, '?', { shiftKey: true })
      expect(e.defaultPrevented).toBe(false)
    }
    expect(calls).toEqual([])
    press(area, 's', { ctrlKey: true })
    expect(calls).toEqual(['save'])
    // an IME composition never triggers anything
    press(area, 's', { ctrlKey: true, isComposing: true })
    expect(calls).toEqual(['save'])
  })

  it('capture bindings run before the focused widget; others after it', () => {
    const order: string[] = []
    const form = document.body.appendChild(document.createElement('div'))
    const input = form.appendChild(document.createElement('input'))
    input.addEventListener('keydown', () => order.push('widget'))
    scope('form', { [B.formNextField.id]: () => void order.push('keymap') })
    press(input, 'Enter')
    expect(order).toEqual(['keymap', 'widget'])
  })
})

describe('the ? overlay', () => {
  it('lists every binding grouped by scope in Chinese, generated from the keymap, and opens with ?', async () => {
    defineBinding({ id: 'test.two', keys: ['F11'], scope: 'viewer', description: '测试按键' })
    const Page = defineComponent({
      setup() {
        const el = ref<HTMLElement>()
        return () => h('div', [h(KeymapHelp), h('input', { ref: el, 'data-testid': 'search' })])
      },
    })
    const w = mount(Page, { global: { plugins: [createAppI18n('zh-CN'), ElementPlus] }, attachTo: document.body })
    await flushPromises()
    press(w.find('[data-testid="search"]').element, '?', { shiftKey: true })
    await flushPromises()
    expect(helpState.open).toBe(false)
    press(document.body, '?', { shiftKey: true })
    await flushPromises()
    expect(helpState.open).toBe(true)
    const dialog = document.querySelector('[data-testid="keymap-help"]')!
    expect(dialog.textContent).toContain('快捷键')
    const groups = [...dialog.querySelectorAll('.keymap-group h4')].map((e) => e.textContent!.trim())
    expect(groups.map((g) => g.split(/\s/)[0])).toEqual(groupedBindings().map((g) => g.label))
    expect(groups[0]).toBe('全局')
    expect(groups).toContain('阅片')
    for (const g of groupedBindings()) {
      for (const b of g.bindings) {
        const row = dialog.querySelector(`[data-testid="keymap-binding-${b.id}"]`)!
        expect(row.textContent).toContain(b.description)
      }
    }
    expect(dialog.querySelector('[data-testid="keymap-binding-report-editor.save"]')!.textContent).toContain('输入时可用')
    expect(dialog.querySelector('[data-testid="keymap-binding-list.next"]')!.textContent).toContain('↓')
    // ? again closes it
    press(document.body, '?', { shiftKey: true })
    await flushPromises()
    expect(helpState.open).toBe(false)
    w.unmount()
    vi.restoreAllMocks()
  })

  it('shows the viewer bindings in the language chosen after start-up (REQ: VIEW-12, UX R7)', async () => {
    const i18n = createAppI18n('zh-CN')
    const w = mount(KeymapHelp, { global: { plugins: [i18n, ElementPlus] }, attachTo: document.body })
    helpState.open = true
    await flushPromises()
    const row = () => document.querySelector('[data-testid="keymap-binding-viewer.tool-length"]')!.textContent!
    expect(row()).toContain('长度')
    i18n.global.locale.value = 'en-US'
    await flushPromises()
    expect(row()).toContain('Length measurement')
    expect(row()).not.toContain('长度')
    w.unmount()
  })
})
