import { describe, expect, it } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { reactive } from 'vue'
import ElementPlus from 'element-plus'
import { createAppI18n } from '@/i18n'
import type { ViewerController } from '@/viewer/core/controller'
import ViewerToolbar from '../ViewerToolbar.vue'

// REQ: VIEW-12 — the custom rows × cols fields show the layout on screen (a 2-image DR opens 1×2), not a fixed 2×2.
function fakeController(rows: number, cols: number) {
  const state = reactive({
    layout: { rows, cols },
    active: 0,
    series: [] as unknown[],
    tool: 'WindowLevel',
    invert: false,
    colormap: null,
    voiFunction: 'LINEAR',
    showValues: true,
    showOverlay: true,
    cine: { playing: false, reverse: false, fps: 10 },
  })
  const ctrl = {
    state,
    activeViewportState: () => undefined,
    getSeries: () => undefined,
    setLayout: (l: { rows: number; cols: number }) => {
      state.layout = l
      return true
    },
  }
  return ctrl as unknown as ViewerController & { state: typeof state }
}

describe('ViewerToolbar custom layout', () => {
  it('starts from the opening layout and follows later changes', async () => {
    const ctrl = fakeController(1, 2)
    const w = mount(ViewerToolbar, {
      props: { ctrl, presets: [], extensionItems: [] },
      global: { plugins: [createAppI18n('zh-CN'), ElementPlus] },
    })
    await flushPromises()
    const value = (id: string) => (w.find(`[data-testid="${id}"] input`).element as HTMLInputElement).value
    expect([value('viewer-layout-rows'), value('viewer-layout-cols')]).toEqual(['1', '2'])
    ctrl.setLayout({ rows: 3, cols: 4 })
    await flushPromises()
    expect([value('viewer-layout-rows'), value('viewer-layout-cols')]).toEqual(['3', '4'])
    w.unmount()
  })
})
