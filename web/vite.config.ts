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
    ],
  },
  server: {
    port: 5173,
    proxy: {
      '/api': {
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
          return undefined
        },
      },
    },
  },
})
