// REQ: VIEW-08 — ROI statistics in Chinese with the modality's unit (HU for CT, SUV for PET)
import { describe, expect, it } from 'vitest'
import { probeTextLines, roiGetTextLines, roiTextLines } from '../textLines'

describe('view08 measurement labels', () => {
  it('names area, mean, SD, max and min with their units', () => {
    expect(
      roiTextLines({ area: 901.23, mean: -455.44, stdDev: 412.2, max: 55, min: -791, areaUnit: 'mm²', modalityUnit: 'HU' }),
    ).toEqual(['面积：901.2 mm²', '均值：-455.4 HU', '标准差：412.2 HU', '最大：55 HU', '最小：-791 HU'])
    expect(roiGetTextLines({ cachedStats: { t: { mean: 2.345, modalityUnit: 'SUV' } } }, 't')).toEqual(['均值：2.35 SUV'])
    expect(roiTextLines({ area: 1, isEmptyArea: true })).toEqual(['面积：斜切面不支持'])
    expect(roiTextLines(undefined)).toEqual([])
  })

  it('labels a probe value and hides the raw unit', () => {
    expect(probeTextLines({ value: 40.04, modalityUnit: 'HU' })).toEqual(['值：40.04 HU'])
    expect(probeTextLines({ value: [1, 2, 3], modalityUnit: ['raw', 'raw', 'raw'] })).toEqual(['值：1', '值：2', '值：3'])
    expect(probeTextLines({})).toEqual([])
  })
})
