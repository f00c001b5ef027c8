import { describe, expect, it } from 'vitest'
import type { JsonSchema, UISchemaElement } from '@jsonforms/core'
import { namedRenderers, elementRenderers } from '../registry'

/** Name of the renderer JSON Forms would pick (highest rank), or null when none applies. */
function pick(uischema: UISchemaElement, schema: JsonSchema): string | null {
  const ctx = { rootSchema: schema, config: {} }
  let best: { name: string; rank: number } | null = null
  for (const r of namedRenderers) {
    const rank = r.tester(uischema, schema, ctx)
    if (rank > -1 && (!best || rank > best.rank)) best = { name: r.name, rank }
  }
  return best?.name ?? null
}

function control(prop: JsonSchema, options?: Record<string, unknown>): [UISchemaElement, JsonSchema] {
  const ui = { type: 'Control', scope: '#/properties/x', ...(options ? { options } : {}) } as UISchemaElement
  return [ui, { type: 'object', properties: { x: prop } } as JsonSchema]
}

describe('renderer registry', () => {
  it('registers every renderer with a tester', () => {
    expect(elementRenderers.length).toBe(namedRenderers.length)
    for (const r of elementRenderers) expect(typeof r.tester).toBe('function')
  })

  it.each([
    ['text', { type: 'string' }, undefined],
    ['text', { type: 'string', maxLength: 50 }, undefined],
    ['textarea', { type: 'string' }, { multi: true }],
    ['textarea', { type: 'string', format: 'textarea' }, undefined],
    ['number', { type: 'number' }, undefined],
    ['number', { type: 'integer', minimum: 0 }, undefined],
    ['select', { type: 'string', enum: ['CT', 'MR', 'DX', 'CR', 'US'] }, undefined],
    ['select', { type: 'string', enum: ['阴性', '阳性'] }, { format: 'select' }],
    [
      'select-oneof',
      {
        type: 'string',
        oneOf: [
          { const: 'a', title: '甲' },
          { const: 'b', title: '乙' },
          { const: 'c', title: '丙' },
          { const: 'd', title: '丁' },
        ],
      },
      undefined,
    ],
    ['radio', { type: 'string', enum: ['阴性', '阳性'] }, undefined],
    [
      'radio',
      {
        type: 'string',
        oneOf: [
          { const: 'approve', title: '确认' },
          { const: 'reject', title: '驳回' },
        ],
      },
      undefined,
    ],
    ['radio', { type: 'string', enum: ['a', 'b', 'c', 'd', 'e'] }, { format: 'radio' }],
    ['date', { type: 'string', format: 'date' }, undefined],
    ['date', { type: 'string', format: 'date-time' }, undefined],
    ['date', { type: 'string' }, { format: 'date' }],
    ['checkbox', { type: 'boolean' }, undefined],
    ['checkbox', { type: 'boolean' }, { toggle: true }],
    [
      'array-table',
      { type: 'array', items: { type: 'object', properties: { body_part: { type: 'string' } } } },
      undefined,
    ],
    ['array-table', { type: 'array', items: { type: 'string' } }, undefined],
  ] as [string, JsonSchema, Record<string, unknown> | undefined][])(
    'picks %s for %j (options %j)',
    (expected, prop, options) => {
      const [ui, schema] = control(prop, options)
      expect(pick(ui, schema)).toBe(expected)
    },
  )

  it.each([
    ['vertical', 'VerticalLayout'],
    ['horizontal', 'HorizontalLayout'],
    ['group', 'Group'],
  ])('picks %s for a %s', (expected, type) => {
    const schema: JsonSchema = { type: 'object', properties: {} }
    expect(pick({ type, elements: [] } as UISchemaElement, schema)).toBe(expected)
  })

  it('picks the label renderer for a Label element', () => {
    expect(pick({ type: 'Label', text: '说明' } as UISchemaElement, { type: 'object' })).toBe('label')
  })

  it('resolves $ref before choosing', () => {
    const schema: JsonSchema = {
      type: 'object',
      definitions: { positive: { type: 'string', enum: ['阴性', '阳性'] } },
      properties: { x: { $ref: '#/definitions/positive' } },
    }
    expect(pick({ type: 'Control', scope: '#/properties/x' } as UISchemaElement, schema)).toBe('radio')
  })

  it('has no renderer for unsupported shapes (JSON Forms shows its fallback)', () => {
    const [ui, schema] = control({ type: 'null' })
    expect(pick(ui, schema)).toBeNull()
  })
})
