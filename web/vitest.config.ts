import { defineConfig, mergeConfig } from 'vitest/config'
import viteConfig from './vite.config'

export default mergeConfig(
  viteConfig,
  defineConfig({
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
