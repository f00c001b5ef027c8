import { describe, expect, it } from 'vitest'
import { Ajv } from '../ajvShim'
import addFormats from '../ajvFormatsShim'
import { validateJson } from '../validator'
import { l2Schema } from '../../../tests/unit/fixtures/forms'

const kw = (schema: Record<string, unknown>, data: unknown) => validateJson(schema, data).map((e) => [e.instancePath, e.keyword])

describe('CSP-safe JSON Schema validator', () => {
  it('reports missing required properties the way Ajv does (params.missingProperty)', () => {
    const errs = validateJson({ type: 'object', required: ['a'], properties: { a: { type: 'string' } } }, {})
    expect(errs).toHaveLength(1)
    expect(errs[0]).toMatchObject({ instancePath: '', keyword: 'required', params: { missingProperty: 'a' } })
    expect(errs[0].parentSchema).toBeDefined()
  })

  it('checks types, enums, const, lengths (in characters), patterns and numbers', () => {
    expect(kw({ type: 'string' }, 1)).toEqual([['', 'type']])
    expect(kw({ type: 'integer' }, 1.5)).toEqual([['', 'type']])
    expect(kw({ type: 'number' }, 2)).toEqual([])
    expect(kw({ type: ['string', 'null'] }, null)).toEqual([])
    expect(kw({ enum: ['阴性', '阳性'] }, '可疑')).toEqual([['', 'enum']])
    expect(kw({ const: 'x' }, 'y')).toEqual([['', 'const']])
    expect(kw({ type: 'string', minLength: 2 }, '肺')).toEqual([['', 'minLength']])
    expect(kw({ type: 'string', maxLength: 2 }, '两肺')).toEqual([])
    expect(kw({ type: 'string', pattern: '^\\d+$' }, '12a')).toEqual([['', 'pattern']])
    expect(kw({ type: 'number', minimum: 0, maximum: 10 }, 11)).toEqual([['', 'maximum']])
    expect(kw({ type: 'number', exclusiveMinimum: 0 }, 0)).toEqual([['', 'exclusiveMinimum']])
    expect(kw({ type: 'number', multipleOf: 0.5 }, 1.25)).toEqual([['', 'multipleOf']])
  })

  it('checks formats: date, date-time', () => {
    expect(kw({ type: 'string', format: 'date' }, '2024-02-30')).toEqual([['', 'format']])
    expect(kw({ type: 'string', format: 'date' }, '2024-02-29')).toEqual([])
    expect(kw({ type: 'string', format: 'date-time' }, '2024-05-01T08:00:00+08:00')).toEqual([])
    expect(kw({ type: 'string', format: 'date-time' }, '2024-05-01 08:00')).toEqual([['', 'format']])
    expect(kw({ type: 'string', format: 'unknown-format' }, 'anything')).toEqual([])
  })

  it('walks arrays and nested objects with JSON pointers', () => {
    const schema = {
      type: 'array',
      minItems: 1,
      items: { type: 'object', required: ['body_part'], properties: { films: { type: 'integer' } } },
    }
    expect(kw(schema, [])).toEqual([['', 'minItems']])
    expect(kw(schema, [{ body_part: '胸部', films: 'x' }, {}])).toEqual([
      ['/0/films', 'type'],
      ['/1', 'required'],
    ])
    expect(kw({ type: 'array', uniqueItems: true }, [1, 2, 1])).toEqual([['', 'uniqueItems']])
    expect(kw({ type: 'object', additionalProperties: false, properties: { a: {} } }, { a: 1, b: 2 })).toEqual([
      ['', 'additionalProperties'],
    ])
  })

  it('supports if/then (驳回 needs 驳回原因), oneOf, anyOf, allOf, not and $ref', () => {
    const base = { findings: 'a', impression: 'b', positive: '阴性' }
    expect(kw(l2Schema, { ...base, decision: 'approve' })).toEqual([])
    expect(kw(l2Schema, { ...base, decision: 'reject' })).toEqual([
      ['', 'required'],
      ['', 'if'],
    ])
    expect(validateJson(l2Schema, { ...base, decision: 'reject' })[0].params.missingProperty).toBe('reject_reason')
    expect(kw(l2Schema, { ...base, decision: 'reject', reject_reason: '' })).toEqual([
      ['/reject_reason', 'minLength'],
      ['', 'if'],
    ])
    expect(kw(l2Schema, { ...base, decision: 'maybe' })).toEqual([
      ['/decision', 'const'],
      ['/decision', 'const'],
      ['/decision', 'oneOf'],
    ])
    expect(kw({ anyOf: [{ type: 'string' }, { type: 'number' }] }, true).pop()).toEqual(['', 'anyOf'])
    expect(kw({ allOf: [{ minimum: 1 }, { maximum: 3 }] }, 5)).toEqual([['', 'maximum']])
    expect(kw({ not: { const: 0 } }, 0)).toEqual([['', 'not']])
    const withRef = { definitions: { p: { enum: ['阴性', '阳性'] } }, properties: { positive: { $ref: '#/definitions/p' } } }
    expect(kw(withRef, { positive: '?' })).toEqual([['/positive', 'enum']])
    expect(kw({ $defs: { n: { type: 'number' } }, $ref: '#/$defs/n' }, 'x')).toEqual([['', 'type']])
  })

  it('gives Chinese messages by default', () => {
    expect(validateJson({ required: ['a'] }, {})[0].message).toBe('此项为必填项')
    expect(validateJson({ type: 'string', minLength: 3 }, 'ab')[0].message).toBe('至少 3 个字符')
  })

  it('has the Ajv surface JSON Forms uses (compile → fn.errors, validate → ajv.errors)', () => {
    const ajv = addFormats(new Ajv({ allErrors: true }))
    const fn = ajv.compile({ type: 'object', required: ['x'] })
    expect(fn({})).toBe(false)
    expect(fn.errors?.[0].keyword).toBe('required')
    expect(fn({ x: 1 })).toBe(true)
    expect(fn.errors).toBeNull()
    expect(ajv.validate({ const: 'reject' }, 'reject')).toBe(true)
    expect(ajv.validate({ const: 'reject' }, 'approve')).toBe(false)
    expect(ajv.errorsText()).toContain('请选择有效的选项')
  })
})
