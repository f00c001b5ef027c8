/**
 * A small interpreting JSON Schema validator (draft-07 keywords plus `$defs`,
 * `dependentRequired`) that reports errors in Ajv's `ErrorObject` shape.
 *
 * Why not Ajv: Ajv compiles every schema to JavaScript source and runs it with
 * `new Function`, which the app's CSP (`default-src 'self'`, no 'unsafe-eval')
 * refuses. JSON Forms only needs `compile(schema)(data)` + `.errors` and
 * `validate(schema, data)`, so `ajvShim.ts` wraps this interpreter in an
 * Ajv-shaped class and Vite aliases `ajv` to it. The server validates the same
 * schema again with Python `jsonschema`; this is the client-side convenience.
 */

export type Schema = Record<string, unknown> | boolean

export interface ErrorObject {
  /** JSON pointer of the failing value, e.g. `/exams/0/body_part` ('' = root). */
  instancePath: string
  schemaPath: string
  keyword: string
  params: Record<string, unknown>
  message: string
  /** The schema object holding the failing keyword (Ajv `verbose: true`). */
  parentSchema?: Record<string, unknown>
  schema?: unknown
  data?: unknown
}

/** Builds the (Chinese) message of one error; see `defaultMessages`. */
export type MessageFn = (keyword: string, params: Record<string, unknown>) => string

const TYPE_NAMES: Record<string, string> = {
  string: '文本',
  number: '数字',
  integer: '整数',
  boolean: '是/否',
  object: '对象',
  array: '列表',
  null: '空值',
}

/** Fallback messages (zh-CN); the app passes vue-i18n messages instead. */
export const defaultMessages: MessageFn = (keyword, p) => {
  switch (keyword) {
    case 'required':
      return '此项为必填项'
    case 'type':
      return `类型应为${String(p.type)
        .split(',')
        .map((t) => TYPE_NAMES[t] || t)
        .join('或')}`
    case 'enum':
    case 'const':
      return '请选择有效的选项'
    case 'minLength':
      return `至少 ${p.limit} 个字符`
    case 'maxLength':
      return `最多 ${p.limit} 个字符`
    case 'pattern':
      return '格式不正确'
    case 'format':
      return p.format === 'date' ? '日期格式应为 YYYY-MM-DD' : '格式不正确'
    case 'minimum':
      return `不能小于 ${p.limit}`
    case 'maximum':
      return `不能大于 ${p.limit}`
    case 'exclusiveMinimum':
      return `必须大于 ${p.limit}`
    case 'exclusiveMaximum':
      return `必须小于 ${p.limit}`
    case 'multipleOf':
      return `必须是 ${p.multipleOf} 的倍数`
    case 'minItems':
      return `至少 ${p.limit} 项`
    case 'maxItems':
      return `最多 ${p.limit} 项`
    case 'uniqueItems':
      return '不能有重复项'
    case 'minProperties':
    case 'maxProperties':
      return '字段数量不符合要求'
    case 'additionalProperties':
      return `不允许的字段 ${p.additionalProperty}`
    case 'oneOf':
      return '须且只能符合其中一项'
    case 'anyOf':
      return '须至少符合其中一项'
    case 'not':
      return '不应符合该条件'
    case 'if':
      return `须符合“${p.failingKeyword}”条件`
    case 'false schema':
      return '不允许此值'
    default:
      return '格式不正确'
  }
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/
const TIME_RE = /^(\d{2}):(\d{2}):(\d{2})(\.\d+)?(z|[+-]\d{2}(:?\d{2})?)?$/i
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

function isValidDate(s: string): boolean {
  const m = DATE_RE.exec(s)
  if (!m) return false
  const y = Number(m[1])
  const mo = Number(m[2])
  const d = Number(m[3])
  if (mo < 1 || mo > 12 || d < 1) return false
  const days = [31, y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
  return d <= days[mo - 1]
}

/** Known formats; unknown formats pass (as with Ajv `strict: false`). */
export const FORMATS: Record<string, (s: string) => boolean> = {
  date: isValidDate,
  time: (s) => TIME_RE.test(s),
  'date-time': (s) => {
    const i = s.search(/[Tt ]/)
    return i === 10 && isValidDate(s.slice(0, 10)) && TIME_RE.test(s.slice(11))
  },
  email: (s) => EMAIL_RE.test(s),
  uri: (s) => /^[a-z][a-z0-9+.-]*:\S*$/i.test(s),
}

function typeOf(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number'
  return typeof v
}

function typeMatches(v: unknown, t: string): boolean {
  const actual = typeOf(v)
  if (t === 'number') return actual === 'number' || actual === 'integer'
  return actual === t
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]))
  }
  const ao = a as Record<string, unknown>
  const bo = b as Record<string, unknown>
  const ak = Object.keys(ao)
  const bk = Object.keys(bo)
  return ak.length === bk.length && ak.every((k) => Object.prototype.hasOwnProperty.call(bo, k) && deepEqual(ao[k], bo[k]))
}

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

function unescapePointer(s: string): string {
  return decodeURIComponent(s).replace(/~1/g, '/').replace(/~0/g, '~')
}

/** Resolve a local `$ref` ("#", "#/definitions/x", "#/$defs/x"). */
export function resolveRef(root: Schema, ref: string): Schema | undefined {
  if (!ref.startsWith('#')) return undefined
  const pointer = ref.slice(1)
  if (pointer === '' || pointer === '/') return root
  let cur: unknown = root
  for (const part of pointer.replace(/^\//, '').split('/')) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[unescapePointer(part)]
  }
  return cur as Schema | undefined
}

function charLength(s: string): number {
  return Array.from(s).length
}

interface Ctx {
  root: Schema
  msg: MessageFn
  depth: number
}

function validateNode(schema: Schema, data: unknown, path: string, sPath: string, ctx: Ctx): ErrorObject[] {
  if (schema === true || schema === undefined) return []
  if (schema === false) {
    return [{ instancePath: path, schemaPath: sPath, keyword: 'false schema', params: {}, message: ctx.msg('false schema', {}), data }]
  }
  if (ctx.depth > 64) return [] // a cyclic $ref: give up rather than loop
  const s = schema as Record<string, unknown>
  const errors: ErrorObject[] = []
  const err = (keyword: string, params: Record<string, unknown>, at = path): void => {
    errors.push({
      instancePath: at,
      schemaPath: `${sPath}/${keyword}`,
      keyword,
      params,
      message: ctx.msg(keyword, params),
      parentSchema: s,
      schema: s[keyword],
      data,
    })
  }
  const sub = (child: Schema, value: unknown, childPath: string, childSPath: string): ErrorObject[] =>
    validateNode(child, value, childPath, childSPath, { ...ctx, depth: ctx.depth + 1 })

  if (typeof s.$ref === 'string') {
    const target = resolveRef(ctx.root, s.$ref)
    if (target !== undefined) errors.push(...sub(target, data, path, `${sPath}/$ref`))
  }

  // type
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string]
    if (!types.some((t) => typeMatches(data, t))) {
      err('type', { type: types.join(',') })
      return errors // other keywords would only repeat the problem
    }
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, data))) err('enum', { allowedValues: s.enum })
  if ('const' in s && !deepEqual(s.const, data)) err('const', { allowedValue: s.const })

  // strings
  if (typeof data === 'string') {
    if (typeof s.minLength === 'number' && charLength(data) < s.minLength) err('minLength', { limit: s.minLength })
    if (typeof s.maxLength === 'number' && charLength(data) > s.maxLength) err('maxLength', { limit: s.maxLength })
    if (typeof s.pattern === 'string') {
      let re: RegExp | null = null
      try {
        re = new RegExp(s.pattern, 'u')
      } catch {
        re = null
      }
      if (re && !re.test(data)) err('pattern', { pattern: s.pattern })
    }
    if (typeof s.format === 'string' && FORMATS[s.format] && !FORMATS[s.format](data)) {
      err('format', { format: s.format })
    }
  }

  // numbers
  if (typeof data === 'number') {
    if (typeof s.minimum === 'number') {
      if (s.exclusiveMinimum === true ? data <= s.minimum : data < s.minimum) {
        err(s.exclusiveMinimum === true ? 'exclusiveMinimum' : 'minimum', { limit: s.minimum })
      }
    }
    if (typeof s.maximum === 'number') {
      if (s.exclusiveMaximum === true ? data >= s.maximum : data > s.maximum) {
        err(s.exclusiveMaximum === true ? 'exclusiveMaximum' : 'maximum', { limit: s.maximum })
      }
    }
    if (typeof s.exclusiveMinimum === 'number' && data <= s.exclusiveMinimum) {
      err('exclusiveMinimum', { limit: s.exclusiveMinimum })
    }
    if (typeof s.exclusiveMaximum === 'number' && data >= s.exclusiveMaximum) {
      err('exclusiveMaximum', { limit: s.exclusiveMaximum })
    }
    if (typeof s.multipleOf === 'number' && s.multipleOf > 0) {
      const q = data / s.multipleOf
      if (Math.abs(q - Math.round(q)) > 1e-9) err('multipleOf', { multipleOf: s.multipleOf })
    }
  }

  // arrays
  if (Array.isArray(data)) {
    if (typeof s.minItems === 'number' && data.length < s.minItems) err('minItems', { limit: s.minItems })
    if (typeof s.maxItems === 'number' && data.length > s.maxItems) err('maxItems', { limit: s.maxItems })
    if (s.uniqueItems === true) {
      outer: for (let i = 0; i < data.length; i++) {
        for (let j = 0; j < i; j++) {
          if (deepEqual(data[i], data[j])) {
            err('uniqueItems', { i: j, j: i })
            break outer
          }
        }
      }
    }
    if (Array.isArray(s.items)) {
      ;(s.items as Schema[]).forEach((itemSchema, i) => {
        if (i < data.length) errors.push(...sub(itemSchema, data[i], `${path}/${i}`, `${sPath}/items/${i}`))
      })
    } else if (s.items !== undefined) {
      data.forEach((item, i) => errors.push(...sub(s.items as Schema, item, `${path}/${i}`, `${sPath}/items`)))
    }
  }

  // objects
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    const obj = data as Record<string, unknown>
    if (Array.isArray(s.required)) {
      for (const name of s.required as string[]) {
        if (obj[name] === undefined) err('required', { missingProperty: name })
      }
    }
    const props = (s.properties || {}) as Record<string, Schema>
    for (const [name, propSchema] of Object.entries(props)) {
      if (obj[name] !== undefined) {
        errors.push(...sub(propSchema, obj[name], `${path}/${escapePointer(name)}`, `${sPath}/properties/${escapePointer(name)}`))
      }
    }
    const patterns = (s.patternProperties || {}) as Record<string, Schema>
    const patternRes = Object.keys(patterns).map((p) => [new RegExp(p, 'u'), patterns[p]] as const)
    for (const [name, value] of Object.entries(obj)) {
      if (value === undefined) continue
      let matched = Object.prototype.hasOwnProperty.call(props, name)
      for (const [re, ps] of patternRes) {
        if (re.test(name)) {
          matched = true
          errors.push(...sub(ps, value, `${path}/${escapePointer(name)}`, `${sPath}/patternProperties`))
        }
      }
      if (!matched && s.additionalProperties !== undefined) {
        if (s.additionalProperties === false) err('additionalProperties', { additionalProperty: name })
        else errors.push(...sub(s.additionalProperties as Schema, value, `${path}/${escapePointer(name)}`, `${sPath}/additionalProperties`))
      }
    }
    const count = Object.values(obj).filter((v) => v !== undefined).length
    if (typeof s.minProperties === 'number' && count < s.minProperties) err('minProperties', { limit: s.minProperties })
    if (typeof s.maxProperties === 'number' && count > s.maxProperties) err('maxProperties', { limit: s.maxProperties })
    const depReq = { ...((s.dependentRequired as Record<string, string[]>) || {}) }
    for (const [name, dep] of Object.entries((s.dependencies as Record<string, unknown>) || {})) {
      if (Array.isArray(dep)) depReq[name] = dep as string[]
      else if (obj[name] !== undefined) errors.push(...sub(dep as Schema, obj, path, `${sPath}/dependencies/${name}`))
    }
    for (const [name, deps] of Object.entries(depReq)) {
      if (obj[name] === undefined) continue
      for (const d of deps) {
        if (obj[d] === undefined) {
          err('dependencies', { property: name, missingProperty: d, deps: deps.join(', '), depsCount: deps.length })
        }
      }
    }
  }

  // combinators
  if (Array.isArray(s.allOf)) {
    ;(s.allOf as Schema[]).forEach((x, i) => errors.push(...sub(x, data, path, `${sPath}/allOf/${i}`)))
  }
  if (Array.isArray(s.anyOf)) {
    const results = (s.anyOf as Schema[]).map((x, i) => sub(x, data, path, `${sPath}/anyOf/${i}`))
    if (!results.some((r) => r.length === 0)) {
      results.forEach((r) => errors.push(...r))
      err('anyOf', {})
    }
  }
  if (Array.isArray(s.oneOf)) {
    const results = (s.oneOf as Schema[]).map((x, i) => sub(x, data, path, `${sPath}/oneOf/${i}`))
    const passing = results.map((r, i) => (r.length === 0 ? i : -1)).filter((i) => i >= 0)
    if (passing.length !== 1) {
      if (passing.length === 0) results.forEach((r) => errors.push(...r))
      err('oneOf', { passingSchemas: passing.length ? passing : null })
    }
  }
  if (s.not !== undefined && sub(s.not as Schema, data, path, `${sPath}/not`).length === 0) err('not', {})
  if (s.if !== undefined && (s.then !== undefined || s.else !== undefined)) {
    const ifOk = sub(s.if as Schema, data, path, `${sPath}/if`).length === 0
    const branch = ifOk ? 'then' : 'else'
    if (s[branch] !== undefined) {
      const r = sub(s[branch] as Schema, data, path, `${sPath}/${branch}`)
      if (r.length) {
        errors.push(...r)
        err('if', { failingKeyword: branch })
      }
    }
  }
  return errors
}

/** Validate `data` against `schema`; `[]` means valid. */
export function validateJson(schema: Schema, data: unknown, msg: MessageFn = defaultMessages): ErrorObject[] {
  return validateNode(schema, data, '', '#', { root: schema, msg, depth: 0 })
}
