// The extension point of the viewer (issue 16): registered extensions get the context and are cleaned up
import { describe, expect, it, vi } from 'vitest'
import { type ViewerContext, registerViewerExtension, setupExtensions, viewerExtensions } from '../extensions'

const ctx = { studyUid: '1.2.3' } as ViewerContext

describe('registerViewerExtension', () => {
  it('runs setup with the context, replaces by id, and runs the cleanups in reverse', () => {
    const order: string[] = []
    const offA = registerViewerExtension({ id: 'a', setup: (c) => void order.push(`a:${c.studyUid}`) })
    registerViewerExtension({ id: 'b', setup: () => () => void order.push('b-off') })
    const b2 = { id: 'b', setup: vi.fn(() => () => void order.push('b2-off')), toolbar: [] }
    const offB = registerViewerExtension(b2)
    expect(viewerExtensions().map((e) => e.id)).toEqual(['a', 'b'])
    const cleanup = setupExtensions(ctx)
    expect(b2.setup).toHaveBeenCalledWith(ctx)
    cleanup()
    expect(order).toEqual(['a:1.2.3', 'b2-off'])
    offA()
    offB()
    expect(viewerExtensions()).toEqual([])
  })

  it('keeps going when one extension throws', () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {})
    const seen: string[] = []
    const off1 = registerViewerExtension({ id: 'bad', setup: () => { throw new Error('boom') } })
    const off2 = registerViewerExtension({ id: 'good', setup: () => void seen.push('good') })
    setupExtensions(ctx)()
    expect(seen).toEqual(['good'])
    expect(err).toHaveBeenCalled()
    off1()
    off2()
    err.mockRestore()
  })
})
