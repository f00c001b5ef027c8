/**
 * One-time set-up of Cornerstone3D for the viewer (REQ: VIEW-01): core, tools and the DICOM image loader with its
 * decoders in web workers (Vite bundles the worker and emits the codecs' .wasm files next to it).
 */
import {
  cache,
  getRenderingCapabilities,
  init as coreInit,
  isCornerstoneInitialized,
  setUseCPURendering,
} from '@cornerstonejs/core'
import { init as toolsInit } from '@cornerstonejs/tools'
import dicomImageLoader from '@cornerstonejs/dicom-image-loader'
import { acceptForImage } from './frameAccept'

let ready: Promise<void> | null = null
let cspShim = false

/**
 * telerad's CSP has `style-src 'self'` (no inline style attributes). Cornerstone's annotation text boxes call
 * `setAttribute('style', …)` on SVG <text> (no selection, drop shadow), which the browser refuses and reports. The
 * same declarations set through the CSSOM (`style.cssText`) are allowed, so SVG elements take that way.
 */
export function installSvgStyleShim(): void {
  if (cspShim || typeof SVGElement === 'undefined') return
  cspShim = true
  const original = SVGElement.prototype.setAttribute
  SVGElement.prototype.setAttribute = function (this: SVGElement, name: string, value: string) {
    if (name.toLowerCase() === 'style') {
      this.style.cssText = value
      return
    }
    original.call(this, name, value)
  }
}

/** Image cache: a 1,000-slice 512×512 CT is ~0.5 GB as 16-bit pixels. */
export const CACHE_BYTES = 3 * 1024 * 1024 * 1024

/** Whether this browser has a usable WebGL2 context (SwiftShader in headless test browsers is slow but works).
 * Cornerstone's own probe, which it makes (and caches) anyway: each WebGL context made costs time at start-up. */
function hasWebGL2(): boolean {
  try {
    return getRenderingCapabilities().webgl2
  } catch {
    return false
  }
}

/**
 * WebGL contexts of a rendering engine. Cornerstone's default makes seven offscreen contexts when the engine is
 * created, before the first image can be drawn — each one start-up time and memory, most in a software rasteriser
 * (SwiftShader) — for the viewports of large layouts to share; the viewer's stack viewports share two
 * (issue 16, UX R18). The marks `telerad:cs-init` / `telerad:cs-ready` time this set-up in a performance trace.
 */
export const WEBGL_CONTEXTS = 2

export function useCpuRenderingPreferred(): boolean {
  // `?cpu=1` forces the CPU path, `?cpu=0` forbids it (diagnostics and the benchmark).
  const q = new URLSearchParams(location.search).get('cpu')
  if (q === '1') return true
  if (q === '0') return false
  return !hasWebGL2()
}

/** The Accept header of each frame request (issue 16): by the instance's stored syntax and the bandwidth mode. */
function frameHeaders(_xhr: XMLHttpRequest, imageId: string): Record<string, string> {
  return { Accept: acceptForImage(imageId) }
}

export function initCornerstone(): Promise<void> {
  if (ready) return ready
  ready = (async () => {
    installSvgStyleShim()
    if (!isCornerstoneInitialized()) {
      performance.mark('telerad:cs-init')
      coreInit({ rendering: { webGlContextCount: WEBGL_CONTEXTS } } as Parameters<typeof coreInit>[0])
      if (useCpuRenderingPreferred()) setUseCPURendering(true)
      toolsInit()
      const workers = Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1))
      dicomImageLoader.init({ maxWebWorkers: workers, beforeSend: frameHeaders })
      cache.setMaxCacheSize(CACHE_BYTES)
      performance.mark('telerad:cs-ready')
    }
  })()
  return ready
}
