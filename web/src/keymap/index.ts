export * from './keymap'
export { B, CHOICE_BINDINGS, PHRASE_BINDINGS } from './bindings'
