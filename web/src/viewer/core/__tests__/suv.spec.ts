// REQ: VIEW-08 — ROI statistics in SUV where the PET tags allow
import { describe, expect, it } from 'vitest'
import type { DicomJson } from '../dicomweb'
import { dicomDateTime, dicomDT, suvbwFactor } from '../suv'

function pet(over: Record<string, unknown> = {}, isotope: Record<string, unknown> = {}): DicomJson {
  const tags: Record<string, unknown> = {
    '00080060': 'PT',
    '00541001': 'BQML',
    '00280051': ['DECY', 'ATTN'],
    '00541102': 'START',
    '00101030': 70, // kg
    '00080021': '20240315',
    '00080031': '100000',
    '00080022': '20240315',
    '00080032': '100000',
    ...over,
  }
  const iso: Record<string, unknown> = {
    '00181074': 370e6, // Bq injected
    '00181075': 6586.2, // s, F-18
    '00181072': '090000',
    ...isotope,
  }
  const ds: DicomJson = {}
  for (const [k, v] of Object.entries(tags)) if (v !== undefined) ds[k] = { Value: Array.isArray(v) ? v : [v] }
  const seq: DicomJson = {}
  for (const [k, v] of Object.entries(iso)) if (v !== undefined) seq[k] = { Value: [v] }
  ds['00540016'] = { vr: 'SQ', Value: [seq] }
  return ds
}

describe('SUVbw from the PET tags', () => {
  it('matches the hand-computed value: 70 kg, 370 MBq F-18 one hour before the scan', () => {
    // dose at scan start = 370e6 × 2^(−3600 / 6586.2) = 253,314,180 Bq; factor = 70,000 g / that
    const f = suvbwFactor(pet())!
    expect(f).toBeCloseTo(2.7633668e-4, 9)
    // 5,000 Bq/ml in an ROI is SUV 1.3817
    expect(5000 * f).toBeCloseTo(1.38168, 4)
  })

  it('takes the injection date-time and an earlier acquisition time, and ADMIN decay correction as is', () => {
    const dt = suvbwFactor(pet({ '00080031': '103000' }, { '00181072': undefined, '00181078': '20240315083000' }))!
    // scan start = the acquisition 10:00 (earlier than the series time 10:30); 1.5 h after 08:30
    expect(dt).toBeCloseTo(70000 / 209598606.3535, 9)
    expect(suvbwFactor(pet({ '00541102': 'ADMIN' }))).toBeCloseTo(70000 / 370e6, 12)
  })

  it('shows no SUV when the tags do not allow', () => {
    expect(suvbwFactor(pet({ '00080060': 'CT' }))).toBeNull()
    expect(suvbwFactor(pet({ '00541001': 'CNTS' }))).toBeNull()
    expect(suvbwFactor(pet({ '00280051': ['ATTN'] }))).toBeNull()
    expect(suvbwFactor(pet({ '00541102': 'NONE' }))).toBeNull()
    expect(suvbwFactor(pet({ '00101030': undefined }))).toBeNull()
    expect(suvbwFactor(pet({}, { '00181074': undefined }))).toBeNull()
    expect(suvbwFactor(pet({}, { '00181075': 0 }))).toBeNull()
    expect(suvbwFactor(pet({}, { '00181072': '110000' }))).toBeNull() // injected after the scan
  })

  it('reads DICOM dates and times', () => {
    expect(dicomDateTime('20240315', '101500.5')! - dicomDateTime('20240315', '1015')!).toBe(500)
    expect(dicomDT('20240315101500.000000+0800')).toBe(dicomDateTime('20240315', '101500'))
    expect(dicomDateTime('2024-03-15', '1015')).toBeNull()
  })
})
