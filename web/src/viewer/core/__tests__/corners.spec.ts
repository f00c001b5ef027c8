// REQ: VIEW-13 — corner text configurable per modality
import { describe, expect, it } from 'vitest'
import { type CornerConfig, DEFAULT_CORNERS, cornerConfigFor, cornerLines, personName } from '../corners'

const ds = {
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Wang^Xiaoming', Ideographic: '王^小明' }] },
  '00100020': { vr: 'LO', Value: ['P001'] },
  '00100040': { vr: 'CS', Value: ['F'] },
  '00101010': { vr: 'AS', Value: ['045Y'] },
  '00080020': { vr: 'DA', Value: ['20261207'] },
  '00200011': { vr: 'IS', Value: [3] },
  '00201041': { vr: 'DS', Value: [-12.345] },
  '00180050': { vr: 'DS', Value: [5] },
}

describe('view13 corner text', () => {
  it('renders the default corners in Chinese from the DICOM JSON', () => {
    const lines = cornerLines(DEFAULT_CORNERS, ds, { index: 4, total: 20, center: 40, width: 400, zoom: 1.5 })
    expect(lines.top_left).toEqual(['王 小明', 'ID：P001', '女 / 45岁'])
    expect(lines.top_right).toEqual(['2026-12-07'])
    expect(lines.bottom_left).toEqual(['序列：3', '图像：5 / 20', '位置：-12.3 mm', '层厚：5 mm'])
    expect(lines.bottom_right).toEqual(['窗宽 400 窗位 40', '缩放：150%'])
  })

  it('uses the per-modality configuration when the user has one', () => {
    const us: CornerConfig = { top_left: ['modality'], top_right: [], bottom_left: [], bottom_right: [] }
    expect(cornerConfigFor('US', DEFAULT_CORNERS, { US: us })).toBe(us)
    expect(cornerConfigFor('CT', DEFAULT_CORNERS, { US: us })).toBe(DEFAULT_CORNERS)
    expect(cornerConfigFor('CT', DEFAULT_CORNERS, undefined)).toBe(DEFAULT_CORNERS)
  })

  it('falls back to the alphabetic name and plain strings', () => {
    expect(personName({ '00100010': { Value: [{ Alphabetic: 'Li^Si' }] } }, '00100010')).toBe('Li Si')
    expect(personName({}, '00100010')).toBe('')
  })
})
