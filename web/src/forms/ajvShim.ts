/**
 * Stand-in for the `ajv` package (Vite aliases `ajv` to this file, see
 * vite.config.ts). JSON Forms calls `new Ajv(opts)`, `ajv.compile(schema)` and
 * `ajv.validate(schema, data)`; real Ajv generates code and runs it with
 * `new Function`, which our CSP forbids. This class interprets the schema
 * instead (validator.ts) and returns errors in Ajv's shape. It imports nothing
 * from the app, so a pre-bundled copy (vite dev) behaves the same; the app
 * creates its own instance with vue-i18n messages (forms/index.ts).
 */
import { defaultMessages, validateJson, type ErrorObject, type MessageFn, type Schema } from './validator'

export type { ErrorObject }

export interface ValidateFunction {
  (data: unknown): boolean
  errors: ErrorObject[] | null
  schema: Schema
}

export class Ajv {
  errors: ErrorObject[] | null = null
  readonly opts: Record<string, unknown>
  private readonly messages: MessageFn

  constructor(opts: Record<string, unknown> = {}, messages: MessageFn = defaultMessages) {
    this.opts = opts
    this.messages = messages
  }

  compile(schema: Schema): ValidateFunction {
    const messages = this.messages
    const fn = ((data: unknown) => {
      const errs = validateJson(schema, data, messages)
      fn.errors = errs.length ? errs : null
      return errs.length === 0
    }) as ValidateFunction
    fn.errors = null
    fn.schema = schema
    return fn
  }

  validate(schema: Schema, data: unknown): boolean {
    const errs = validateJson(schema, data, this.messages)
    this.errors = errs.length ? errs : null
    return errs.length === 0
  }

  // The rest of Ajv's surface that callers may touch; formats and keywords are built in.
  addFormat(): this {
    return this
  }
  addKeyword(): this {
    return this
  }
  addSchema(): this {
    return this
  }
  addMetaSchema(): this {
    return this
  }
  addVocabulary(): this {
    return this
  }
  removeSchema(): this {
    return this
  }
  getSchema(): undefined {
    return undefined
  }
  errorsText(errors: ErrorObject[] | null | undefined = this.errors): string {
    return errors?.length ? errors.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ') : 'No errors'
  }
}

export default Ajv
