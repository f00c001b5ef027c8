import { defineConfig, mergeConfig } from 'vitest/config'
import viteConfig from './vite.config'

export default mergeConfig(
  viteConfig,
  defineConfig({
    // Specs read server sources (?raw) to check that the SPA names every code the API sends: the repository root.
    server: { fs: { allow: ['..'] } },
    test: {
      environment: 'jsdom',
      include: ['src/**/__tests__/**/*.spec.ts', 'tests/unit/**/*.spec.ts'],
      setupFiles: ['tests/unit/setup.ts'],
      css: false,
      server: {
        deps: {
          inline: ['element-plus', '@jsonforms/core', '@jsonforms/vue'],
        },
      },
    },
  }),
)
