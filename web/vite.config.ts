import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
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

export default defineConfig({
  base: '/',
  plugins: [vue()],
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
      output: {
        // The chunk that the BPMN viewer and modeler share is named after its first module
        // (bpmn-overrides.css); call it what it is.
        chunkFileNames: (chunk) =>
          chunk.name === 'bpmn-overrides' ? 'assets/bpmn-core-[hash].js' : 'assets/[name]-[hash].js',
        manualChunks(id: string) {
          if (id.includes('node_modules/element-plus') || id.includes('node_modules/@element-plus')) {
            return 'element-plus'
          }
          if (/node_modules\/(@vue|vue|vue-router|pinia|vue-i18n|@intlify)\//.test(id)) {
            return 'vue'
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
