// REQ: VIEW-05 — presets per body part on keys 1–9, linear and sigmoid VOI
import { describe, expect, it } from 'vitest'
import { DEFAULT_PRESETS, type WindowPreset, linear, presetForKey, presetsFor, sigmoid, toRange, toWindow } from '../voi'

describe('view05 window presets', () => {
  it('has the CT body-part windows on 1–5', () => {
    const names = Object.fromEntries(DEFAULT_PRESETS.map((p) => [p.key, p.name]))
    expect(names).toEqual({ '1': '肺窗', '2': '纵隔窗', '3': '骨窗', '4': '脑窗', '5': '腹窗' })
    expect(presetForKey(DEFAULT_PRESETS, 'CT', '1')).toMatchObject({ window_center: -600, window_width: 1500 })
  })

  it('matches the server built-in default of viewer.presets', async () => {
    const src = (await import('../../../../../engine/settings/registry.py?raw')).default as string
    for (const p of DEFAULT_PRESETS) {
      expect(src).toContain(`"id": "${p.id}", "name": "${p.name}", "modality": "CT", "window_center": ${p.window_center}`)
    }
  })

  it('chooses by modality: a keyed preset first, then the N-th unkeyed one', () => {
    const mine: WindowPreset[] = [
      { id: 'mr_t1', name: 'MR 常规', modality: 'MR', window_center: 300, window_width: 600 },
      { id: 'any', name: '通用', modality: null, window_center: 128, window_width: 256 },
      { id: 'ct_liver', name: '肝窗', modality: 'CT', window_center: 60, window_width: 160, key: '7' },
    ]
    expect(presetsFor(mine, 'MR').map((p) => p.id)).toEqual(['mr_t1', 'any'])
    expect(presetForKey(mine, 'MR', '2')?.id).toBe('any')
    expect(presetForKey(mine, 'CT', '7')?.id).toBe('ct_liver')
    expect(presetForKey(mine, 'CT', '1')?.id).toBe('any')
    expect(presetForKey(mine, 'CT', '3')).toBeNull()
    expect(presetForKey(mine, 'US', 'x')).toBeNull()
  })
})

describe('view05 VOI functions', () => {
  it('converts between window and range', () => {
    expect(toRange(40, 400)).toEqual({ lower: -160, upper: 240 })
    expect(toWindow({ lower: -160, upper: 240 })).toEqual({ center: 40, width: 400 })
  })

  it('linear clips outside the window, sigmoid never does and crosses 0.5 at the centre', () => {
    expect(linear(-1000, 40, 400)).toBe(0)
    expect(linear(1000, 40, 400)).toBe(1)
    expect(linear(40, 40, 400)).toBeCloseTo(0.5, 2)
    expect(sigmoid(40, 40, 400)).toBeCloseTo(0.5, 6)
    expect(sigmoid(-1000, 40, 400)).toBeGreaterThan(0)
    expect(sigmoid(1000, 40, 400)).toBeLessThan(1)
    // steeper for a narrower window
    expect(sigmoid(60, 40, 80) - 0.5).toBeGreaterThan(sigmoid(60, 40, 400) - 0.5)
  })
})
