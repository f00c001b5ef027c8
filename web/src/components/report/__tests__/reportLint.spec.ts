import { describe, expect, it } from 'vitest'
import { lintReport } from '../reportLint'

describe('lintReport (UX.md R4 soft checks)', () => {
  it('flags a side in the conclusion that the findings never name', () => {
    const w = lintReport('左肺上叶见一结节，直径约8mm。', '1. 右肺上叶结节，建议随访。')
    expect(w).toEqual([{ code: 'sideMismatch', params: { side: '右', other: '左' } }])
    expect(lintReport('肝内见低密度灶。', '右肾结石。')).toEqual([{ code: 'sideMissing', params: { side: '右' } }])
  })

  it('accepts matching sides, both sides and 双侧/两侧', () => {
    expect(lintReport('右肺上叶见结节，左肺清晰。', '右肺上叶结节。')).toEqual([])
    expect(lintReport('双侧胸腔少量积液。', '双侧胸腔积液。')).toEqual([])
    expect(lintReport('两肺纹理增多。', '左右肺纹理增多。')).toEqual([])
  })

  it('flags more than three differentials on one line', () => {
    const w = lintReport('右肺上叶见肿块。', '1. 右肺上叶肿块，考虑肺癌、结核球、炎性假瘤或错构瘤可能。\n2. 纵隔淋巴结未见肿大。')
    expect(w).toEqual([{ code: 'tooManyDifferentials', params: { line: 1, count: 4 } }])
    expect(lintReport('右肺上叶见肿块。', '右肺上叶肿块，考虑肺癌、结核球或炎性假瘤可能。')).toEqual([])
    expect(lintReport('右肺上叶见肿块。', '右肺上叶肿块，考虑肺癌或结核球可能。')).toEqual([])
  })
})
