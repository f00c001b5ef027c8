/**
 * The one keymap (issue 14). Bindings are declared once (id, keys, scope, Chinese description);
 * the component that owns a scope registers the handlers while it is mounted. A key means one thing
 * in one scope: a second binding of the same key in the same scope is an error at declaration.
 *
 * Which scopes are active follows focus and route: a scope registered with an element is active
 * for keys typed inside that element (the event's target, i.e. what has the focus); a scope
 * registered without one is active while its component (a routed page, or the layout for
 * `global`) is mounted. Inner element scopes come first, then page scopes (the latest first),
 * then `global`.
 *
 * Typing in an input, textarea, select or contenteditable never triggers a command, unless the
 * binding is marked `inEditable` (e.g. Ctrl+S in the report editor). An IME composition never
 * triggers anything.
 */
import { onBeforeUnmount, onMounted, shallowReactive } from 'vue'

export type ScopeId = 'global' | 'list' | 'form' | 'report-editor' | 'viewer'

/** Scopes in the order the `?` overlay lists them, with their Chinese names. */
export const SCOPES: readonly { id: ScopeId; label: string }[] = [
  { id: 'global', label: '全局' },
  { id: 'list', label: '列表' },
  { id: 'form', label: '登记表单' },
  { id: 'report-editor', label: '报告编辑' },
  { id: 'viewer', label: '阅片' },
]

export interface BindingDef {
  /** Stable id, `<scope>.<action>` by convention. */
  id: string
  /** One or more chords, e.g. `Ctrl+S`, `ArrowDown`, `?` (Ctrl also matches ⌘ on macOS). */
  keys: readonly string[]
  scope: ScopeId
  /** Chinese, shown in the `?` overlay. */
  description: string
  /** An i18n message key for the description: the overlay translates it when shown, in the current language. */
  descriptionKey?: string
  descriptionArgs?: Record<string, unknown>
  /** Also fires while typing in a text field (editor commands such as Ctrl+S). */
  inEditable?: boolean
  /** Runs in the capture phase, before the focused widget sees the key (e.g. Enter in a select). */
  capture?: boolean
  /** The handler decides about preventDefault itself (default: prevented when handled). */
  keepDefault?: boolean
}

/** A handler returns `false` when it did not act (the key then goes on to lower scopes). */
export type KeyHandler = (e: KeyboardEvent) => void | boolean

export class KeymapError extends Error {}

const NAMED: Record<string, string> = { ' ': 'Space', esc: 'Escape', up: 'ArrowUp', down: 'ArrowDown' }
for (const k of [
  'Enter', 'Tab', 'Escape', 'Space', 'Backspace', 'Delete', 'Insert', 'Home', 'End', 'PageUp', 'PageDown',
  'ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight',
  ...Array.from({ length: 12 }, (_, i) => `F${i + 1}`),
]) {
  NAMED[k.toLowerCase()] = k
}

function keyName(key: string): string {
  if (key.length === 1) return key === ' ' ? 'Space' : key.toUpperCase()
  return NAMED[key.toLowerCase()] ?? key
}

/** `ctrl+s` → `Ctrl+S`; modifiers in a fixed order. */
export function normalizeChord(chord: string): string {
  const parts = chord.split('+')
  // "Ctrl++" names the + key
  const key = parts[parts.length - 1] === '' && parts.length > 1 ? '+' : parts[parts.length - 1]
  const mods = new Set(parts.slice(0, -1).map((m) => m.trim().toLowerCase()))
  const out: string[] = []
  if (mods.has('ctrl') || mods.has('meta') || mods.has('cmd')) out.push('Ctrl')
  if (mods.has('alt')) out.push('Alt')
  if (mods.has('shift')) out.push('Shift')
  for (const m of mods) if (!['ctrl', 'meta', 'cmd', 'alt', 'shift', ''].includes(m)) throw new KeymapError(`未知的修饰键：${m}`)
  return [...out, keyName(key)].join('+')
}

/**
 * The chord of a key event. Shift counts for letters and named keys (Shift+Tab), not for symbols
 * it is needed to type (`?` is Shift+/ on most layouts, and means `?`).
 */
export function eventChord(e: KeyboardEvent): string {
  const key = keyName(e.key)
  const symbol = e.key.length === 1 && !/[a-z0-9]/i.test(e.key)
  const out: string[] = []
  if (e.ctrlKey || e.metaKey) out.push('Ctrl')
  if (e.altKey) out.push('Alt')
  if (e.shiftKey && !symbol) out.push('Shift')
  return [...out, key].join('+')
}

/** True when the target takes typed text: input (not a checkbox/radio/button), textarea, select, contenteditable. */
export function isTextField(target: EventTarget | null): boolean {
  if (!target || !(target instanceof HTMLElement)) return false
  if (target.isContentEditable || target.closest('[contenteditable=""], [contenteditable="true"], [contenteditable="plaintext-only"]'))
    return true
  const tag = target.tagName
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true
  if (tag !== 'INPUT') return false
  const type = (target as HTMLInputElement).type
  return !['checkbox', 'radio', 'button', 'submit', 'reset', 'range', 'color', 'file', 'image'].includes(type)
}

// ---- declarations ------------------------------------------------------------------------------------------------
const bindings = new Map<string, BindingDef>()
const byChord = new Map<string, string>() // `${scope} ${chord}` → binding id
/** Reactive list for the overlay. */
export const declared = shallowReactive<BindingDef[]>([])

/**
 * Declare a binding.
 * @throws KeymapError — the id is taken, or one of its keys already means something in that scope.
 */
export function defineBinding(def: BindingDef): BindingDef {
  if (bindings.has(def.id)) throw new KeymapError(`快捷键 ${def.id} 重复声明`)
  if (!SCOPES.some((s) => s.id === def.scope)) throw new KeymapError(`未知的快捷键范围：${def.scope}`)
  if (!def.keys.length) throw new KeymapError(`快捷键 ${def.id} 没有按键`)
  const chords = def.keys.map(normalizeChord)
  for (const c of chords) {
    const other = byChord.get(`${def.scope} ${c}`)
    if (other) throw new KeymapError(`按键 ${c} 在“${scopeLabel(def.scope)}”中已用于 ${other}`)
  }
  if (new Set(chords).size !== chords.length) throw new KeymapError(`快捷键 ${def.id} 的按键重复`)
  const frozen = Object.freeze({ ...def, keys: Object.freeze(chords) })
  for (const c of chords) byChord.set(`${def.scope} ${c}`, def.id)
  bindings.set(def.id, frozen)
  declared.push(frozen)
  return frozen
}

/** Remove a declaration (tests only). */
export function undefineBinding(id: string): void {
  const def = bindings.get(id)
  if (!def) return
  for (const c of def.keys) byChord.delete(`${def.scope} ${c}`)
  bindings.delete(id)
  const i = declared.findIndex((d) => d.id === id)
  if (i >= 0) declared.splice(i, 1)
}

export function getBinding(id: string): BindingDef | undefined {
  return bindings.get(id)
}

export function scopeLabel(scope: ScopeId): string {
  return SCOPES.find((s) => s.id === scope)?.label ?? scope
}

/** Every declared binding grouped by scope, in SCOPES order (empty scopes left out). */
export function groupedBindings(): { scope: ScopeId; label: string; bindings: BindingDef[] }[] {
  return SCOPES.map((s) => ({ scope: s.id, label: s.label, bindings: declared.filter((b) => b.scope === s.id) })).filter(
    (g) => g.bindings.length > 0,
  )
}

// ---- active scopes and dispatch ---------------------------------------------------------------------------------
export interface ScopeOptions {
  /** The element whose focus activates the scope; without it the scope is active while registered. */
  el?: () => HTMLElement | null | undefined
}

interface ScopeInstance {
  scope: ScopeId
  handlers: Record<string, KeyHandler>
  el?: () => HTMLElement | null | undefined
  seq: number
}

let seq = 0
/** Registered scope instances (reactive: the overlay marks the scopes of the current page). */
export const activeScopes = shallowReactive<ScopeInstance[]>([])
let installed = false

/**
 * Register the handlers of a scope instance; returns the function that removes them.
 * @throws KeymapError — a handler names a binding that is not declared in that scope.
 */
export function activateScope(scope: ScopeId, handlers: Record<string, KeyHandler>, opts: ScopeOptions = {}): () => void {
  for (const id of Object.keys(handlers)) {
    const def = bindings.get(id)
    if (!def) throw new KeymapError(`未声明的快捷键：${id}`)
    if (def.scope !== scope) throw new KeymapError(`快捷键 ${id} 属于“${scopeLabel(def.scope)}”，不属于“${scopeLabel(scope)}”`)
  }
  install()
  const inst: ScopeInstance = { scope, handlers, el: opts.el, seq: ++seq }
  activeScopes.push(inst)
  return () => {
    const i = activeScopes.indexOf(inst)
    if (i >= 0) activeScopes.splice(i, 1)
  }
}

/** Register a scope's handlers for the lifetime of the calling component. */
export function useKeyScope(scope: ScopeId, handlers: Record<string, KeyHandler>, opts: ScopeOptions = {}): void {
  let off: (() => void) | null = null
  onMounted(() => {
    off = activateScope(scope, handlers, opts)
  })
  onBeforeUnmount(() => off?.())
}

function depth(el: Node): number {
  let d = 0
  for (let n: Node | null = el; n; n = n.parentNode) d++
  return d
}

/** Scope instances that apply to a key typed at `target`, most specific first. */
function candidates(target: EventTarget | null): ScopeInstance[] {
  const node = target instanceof Node ? target : null
  const inElement: { inst: ScopeInstance; d: number }[] = []
  const page: ScopeInstance[] = []
  const global: ScopeInstance[] = []
  for (const inst of activeScopes) {
    if (inst.el) {
      const el = inst.el()
      if (el && node && el.contains(node)) inElement.push({ inst, d: depth(el) })
    } else if (inst.scope === 'global') global.push(inst)
    else page.push(inst)
  }
  inElement.sort((a, b) => b.d - a.d || b.inst.seq - a.inst.seq)
  page.sort((a, b) => b.seq - a.seq)
  global.sort((a, b) => b.seq - a.seq)
  return [...inElement.map((x) => x.inst), ...page, ...global]
}

/** Handle a keydown in one phase; exported for tests. Returns the id of the binding that acted. */
export function dispatchKey(e: KeyboardEvent, capture: boolean): string | null {
  if (e.isComposing || e.keyCode === 229) return null
  const chord = eventChord(e)
  const typing = isTextField(e.target)
  for (const inst of candidates(e.target)) {
    const id = byChord.get(`${inst.scope} ${chord}`)
    if (!id) continue
    const def = bindings.get(id)!
    if (!!def.capture !== capture) continue
    if (typing && !def.inEditable) continue
    const handler = inst.handlers[id]
    if (!handler) continue
    if (handler(e) === false) continue
    if (!def.keepDefault) e.preventDefault()
    return id
  }
  return null
}

function install(): void {
  if (installed || typeof window === 'undefined') return
  installed = true
  window.addEventListener('keydown', (e) => void dispatchKey(e, true), true)
  window.addEventListener('keydown', (e) => void dispatchKey(e, false))
}

// ---- the `?` overlay's open state ---------------------------------------------------------------------------------
export const helpState = shallowReactive({ open: false })

export function openKeymapHelp(): void {
  helpState.open = true
}

export function toggleKeymapHelp(): void {
  helpState.open = !helpState.open
}
