// UX R7 — every viewer tool has a key in the viewer scope; K and Ctrl+S are left to the key-image/save extension
import { describe, expect, it } from 'vitest'
import { B, declared, normalizeChord } from '@/keymap'
import { viewerKeyHandlers } from '@/views/viewer/viewerKeys'

describe('viewer keymap scope', () => {
  // K and Ctrl+S are the persistence extension's (web/src/viewer/persist/extension.ts registers their handlers)
  const extension = new Set([B.viewerSaveMarks.id, B.viewerKeyImage.id])
  const viewer = declared.filter((d) => d.scope === 'viewer' && !extension.has(d.id))

  it('declares the presets 1–9 and a key for every tool, with Chinese descriptions', () => {
    const presetKeys = viewer.filter((d) => d.id.startsWith('viewer.preset-')).flatMap((d) => d.keys)
    expect(presetKeys).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9'])
    const layoutKeys = viewer.filter((d) => d.id.startsWith('viewer.layout-')).flatMap((d) => d.keys)
    expect(layoutKeys).toEqual(['Alt+1', 'Alt+2', 'Alt+3', 'Alt+4', 'Alt+5', 'Alt+6', 'Alt+7'])
    for (const id of ['wl', 'pan', 'zoom', 'magnify', 'length', 'angle', 'cobb', 'ellipse', 'circle', 'rectangle', 'polygon', 'freehand', 'probe', 'arrow', 'text']) {
      expect(viewer.some((d) => d.id === `viewer.tool-${id}`)).toBe(true)
    }
    for (const d of viewer) expect(d.description).toMatch(/[\u4e00-\u9fa5]/)
  })

  it('leaves K and Ctrl+S free for the key-image/save extension', () => {
    const keys = viewer.flatMap((d) => d.keys)
    expect(keys).not.toContain(normalizeChord('K'))
    expect(keys).not.toContain(normalizeChord('Ctrl+S'))
    expect(B.viewerKeyImage.keys).toEqual([normalizeChord('K')])
    expect(B.viewerSaveMarks.keys).toEqual([normalizeChord('Ctrl+S')])
  })

  it('has a handler for every binding it declares, and the handlers do nothing without a viewer', () => {
    const handlers = viewerKeyHandlers(() => null, () => [])
    const ids = viewer.map((d) => d.id).filter((id) => id.startsWith('viewer.'))
    expect(Object.keys(handlers).sort()).toEqual(ids.sort())
    const e = new KeyboardEvent('keydown', { key: '1' })
    expect(handlers[B.viewerPreset.id](e)).toBe(false)
  })
})
