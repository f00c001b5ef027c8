import { describe, expect, it } from 'vitest'
import { diffStats, diffText } from '../diff'

describe('diff helper (revision trace)', () => {
  it('returns one equal part for identical text and nothing for two empties', () => {
    expect(diffText('两肺纹理清晰', '两肺纹理清晰')).toEqual([{ kind: 'equal', text: '两肺纹理清晰' }])
    expect(diffText(null, undefined)).toEqual([])
    expect(diffText('', '')).toEqual([])
  })

  it('compares Chinese text character by character', () => {
    const parts = diffText('右肺上叶见结节', '右肺下叶见小结节')
    expect(parts).toEqual([
      { kind: 'equal', text: '右肺' },
      { kind: 'delete', text: '上' },
      { kind: 'insert', text: '下' },
      { kind: 'equal', text: '叶见' },
      { kind: 'insert', text: '小' },
      { kind: 'equal', text: '结节' },
    ])
    expect(diffStats(parts)).toEqual({ inserted: 2, deleted: 1 })
  })

  it('treats a missing side as empty', () => {
    expect(diffText(null, '建议复查')).toEqual([{ kind: 'insert', text: '建议复查' }])
    expect(diffText('建议复查', null)).toEqual([{ kind: 'delete', text: '建议复查' }])
  })

  it('compares Latin text word by word', () => {
    const parts = diffText('CT chest plain scan', 'CT chest enhanced scan')
    expect(parts.filter((p) => p.kind !== 'equal')).toEqual([
      { kind: 'delete', text: 'plain' },
      { kind: 'insert', text: 'enhanced' },
    ])
    // The parts rebuild both texts.
    expect(parts.filter((p) => p.kind !== 'insert').map((p) => p.text).join('')).toBe('CT chest plain scan')
    expect(parts.filter((p) => p.kind !== 'delete').map((p) => p.text).join('')).toBe('CT chest enhanced scan')
  })
})
