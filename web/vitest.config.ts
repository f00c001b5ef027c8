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
      // A mounted page with Element Plus takes ~1 s on a quiet 2-core machine and 5 s+ when the machine is shared:
      // the default 5 s timeout failed specs that pass alone. They assert behaviour, never time.
      testTimeout: 20000,
      server: {
        deps: {
          inline: ['element-plus', '@jsonforms/core', '@jsonforms/vue'],
        },
      },
    },
  }),
)
