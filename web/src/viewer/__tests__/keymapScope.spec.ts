// UX R7 — every viewer tool has a key in the viewer scope; K and Ctrl+S are left to the key-image/save extension
import { describe, expect, it } from 'vitest'
import { B, declared, normalizeChord } from '@/keymap'
import { viewerKeyHandlers } from '@/views/viewer/viewerKeys'

describe('viewer keymap scope', () => {
  const viewer = declared.filter((d) => d.scope === 'viewer')

  it('declares the presets 1–9 and a key for every tool, with Chinese descriptions', () => {
    expect(B.viewerPreset.keys).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9'])
    for (const id of ['wl', 'pan', 'zoom', 'magnify', 'length', 'angle', 'cobb', 'ellipse', 'circle', 'rectangle', 'polygon', 'freehand', 'probe', 'arrow', 'text']) {
      expect(viewer.some((d) => d.id === `viewer.tool-${id}`)).toBe(true)
    }
    for (const d of viewer) expect(d.description).toMatch(/[\u4e00-\u9fa5]/)
  })

  it('leaves K and Ctrl+S free for the key-image/save extension', () => {
    const keys = viewer.flatMap((d) => d.keys)
    expect(keys).not.toContain(normalizeChord('K'))
    expect(keys).not.toContain(normalizeChord('Ctrl+S'))
  })

  it('has a handler for every binding it declares, and the handlers do nothing without a viewer', () => {
    const handlers = viewerKeyHandlers(() => null, () => [])
    const ids = viewer.map((d) => d.id).filter((id) => id.startsWith('viewer.'))
    expect(Object.keys(handlers).sort()).toEqual(ids.sort())
    const e = new KeyboardEvent('keydown', { key: '1' })
    expect(handlers[B.viewerPreset.id](e)).toBe(false)
  })
})
