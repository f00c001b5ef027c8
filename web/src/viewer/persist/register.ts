/**
 * Registers the viewer's persistence extension (issue 16; REQ: VIEW-08, RPT-05): saved marks and key images. Light:
 * the extension itself (./extension.ts, with Cornerstone) is loaded when a viewer is ready. Imported by main.ts.
 */
import { B } from '@/keymap'
import { i18n } from '@/i18n'
import { registerViewerExtension, type ViewerContext } from '@/viewer/extensions'
import type { PersistHandle } from './extension'

// by rendering engine: the toolbar hands its items a fresh ViewerContext of the same viewer
const handles = new Map<string, PersistHandle>()
const key = (ctx: ViewerContext): string => ctx.renderingEngineId

registerViewerExtension({
  id: 'persist',
  toolbar: [
    {
      id: 'persist.save',
      get label() { return i18n.global.t('viewer.marks.save') },
      get tooltip() { return i18n.global.t('viewer.marks.saveTip') },
      bindingId: B.viewerSaveMarks.id,
      onClick: (ctx) => void handles.get(key(ctx))?.save(),
    },
    {
      id: 'persist.key-image',
      get label() { return i18n.global.t('viewer.key.button') },
      get tooltip() { return i18n.global.t('viewer.key.buttonTip') },
      bindingId: B.viewerKeyImage.id,
      onClick: (ctx) => void handles.get(key(ctx))?.toggleKey(),
    },
  ],
  setup(ctx) {
    let dispose: (() => void) | null = null
    let current: PersistHandle | null = null
    let gone = false
    void import('./extension').then(({ attach }) => {
      if (gone) return
      const a = attach(ctx)
      current = a.handle
      handles.set(key(ctx), a.handle)
      dispose = a.dispose
    })
    return () => {
      gone = true
      if (handles.get(key(ctx)) === current) handles.delete(key(ctx))
      dispose?.()
    }
  },
})
