export * from './keymap'
export { B } from './bindings'
