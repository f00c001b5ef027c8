import { fileURLToPath, URL } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'

// Feature flags for Vue / vue-i18n. vue-i18n 11 compiles messages to an AST and
// interprets it (JIT), so no `new Function` / `eval` is needed and the app runs
// under a strict `default-src 'self'` CSP.
export const featureFlags = {
  __VUE_OPTIONS_API__: 'true',
  __VUE_PROD_DEVTOOLS__: 'false',
  __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  __VUE_I18N_FULL_INSTALL__: 'true',
  __VUE_I18N_LEGACY_API__: 'false',
  __INTLIFY_PROD_DEVTOOLS__: 'false',
  __INTLIFY_JIT_COMPILATION__: 'true',
  __INTLIFY_DROP_MESSAGE_COMPILER__: 'false',
}

/**
 * The viewer's boot preview (src/boot/preview.ts; issue 16, UX R18) as its own small entry, loaded by index.html
 * ahead of the app with `<script type="module" async>` (a file, not inline: the CSP has script-src 'self'). Vite
 * would fold a second module script of index.html into the app's entry, so the entry is built beside it and the tag
 * added here, with the built file's hashed name (in dev: the source).
 */
const BOOT_ENTRY = 'src/boot/entry.ts'
function bootEntry(): Plugin {
  return {
    name: 'telerad-boot-entry',
    transformIndexHtml: {
      order: 'post',
      handler(_html, ctx) {
        let src = `/${BOOT_ENTRY}`
        if (ctx.bundle) {
          const chunk = Object.values(ctx.bundle).find((c) => c.type === 'chunk' && c.isEntry && c.name === 'boot')
          if (!chunk) throw new Error('the boot entry was not built')
          src = `/${chunk.fileName}`
        }
        return [{ tag: 'script', attrs: { type: 'module', async: true, src }, injectTo: 'head-prepend' }]
      },
    },
  }
}

export default defineConfig({
  base: '/',
  plugins: [vue(), bootEntry()],
  define: featureFlags,
  resolve: {
    alias: [
      { find: '@', replacement: fileURLToPath(new URL('./src', import.meta.url)) },
      // JSON Forms imports Ajv, which compiles schemas with `new Function` (refused by the CSP).
      // Swap in an interpreting validator with the same surface; see src/forms/ajvShim.ts.
      { find: /^ajv$/, replacement: fileURLToPath(new URL('./src/forms/ajvShim.ts', import.meta.url)) },
      { find: /^ajv-formats$/, replacement: fileURLToPath(new URL('./src/forms/ajvFormatsShim.ts', import.meta.url)) },
      // vtk.js (under Cornerstone3D) pulls in xmlbuilder2, which needs Node's `events` (the npm polyfill).
      { find: /^events$/, replacement: 'events/events.js' },
    ],
  },
  // The DICOM decoders of @cornerstonejs/dicom-image-loader run in ES-module web workers; the loader is not
  // pre-bundled so that its `new URL('./decodeImageFrameWorker.js', import.meta.url)` keeps pointing at a real file.
  worker: { format: 'es' },
  optimizeDeps: {
    exclude: ['@cornerstonejs/dicom-image-loader'],
    include: ['dicom-parser'],
  },
  server: {
    port: 5173,
    proxy: {
      '/api': {
        target: 'http://127.0.0.1:8080',
        changeOrigin: false,
      },
      '/dicomweb': {
        target: 'http://127.0.0.1:8080',
        changeOrigin: false,
      },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Never inline assets as data: URIs — the CSP only allows 'self'.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      input: {
        index: fileURLToPath(new URL('./index.html', import.meta.url)),
        boot: fileURLToPath(new URL(`./${BOOT_ENTRY}`, import.meta.url)),
      },
      output: {
        // The chunk that the BPMN viewer and modeler share is named after its first module
        // (bpmn-overrides.css); call it what it is.
        chunkFileNames: (chunk) =>
          chunk.name === 'bpmn-overrides' ? 'assets/bpmn-core-[hash].js' : 'assets/[name]-[hash].js',
        manualChunks(id: string) {
          // Vite's preload helper and Rollup's CommonJS helpers: tiny, used by every lazy import. Left to Rollup
          // they landed in the Cornerstone chunk, which every page (the viewer's first request too) then loaded
          // whole: 6 MB before the app could start (issue 16, UX R18).
          if (id.includes('vite/preload-helper') || id.includes('commonjsHelpers')) {
            return 'vue'
          }
          if (id.includes('node_modules/element-plus') || id.includes('node_modules/@element-plus')) {
            return 'element-plus'
          }
          if (/node_modules\/(@vue|vue|vue-router|pinia|vue-i18n|@intlify)\//.test(id)) {
            return 'vue'
          }
          // The DICOM SR export (@cornerstonejs/adapters, ~1 MB): only the marks' save path imports it, lazily
          // (src/viewer/persist/sr.ts). Its own chunk keeps it off the first image's path: the Cornerstone chunk is
          // evaluated before the viewer can draw, and its size is most of that time (issue 16, UX R18).
          if (/node_modules\/@cornerstonejs\/adapters\//.test(id)) {
            return 'cornerstone-sr'
          }
          // Cornerstone3D and what it pulls in (vtk.js, the DICOM parsers): only the viewer's lazy chunks load it.
          if (/node_modules\/(@cornerstonejs|@kitware|dicom-parser|dcmjs|gl-matrix|comlink|xmlbuilder2)\//.test(id)) {
            return 'cornerstone'
          }
          return undefined
        },
      },
    },
  },
})
