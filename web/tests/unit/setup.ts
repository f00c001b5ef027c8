// Global test setup: jsdom lacks a few browser APIs Element Plus touches.
import { afterEach } from 'vitest'

class ResizeObserverStub {
  observe(): void {}
  unobserve(): void {}
  disconnect(): void {}
}

const g = globalThis as unknown as Record<string, unknown>
if (!g.ResizeObserver) g.ResizeObserver = ResizeObserverStub

afterEach(() => {
  sessionStorage.clear()
})
