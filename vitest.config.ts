import { defineConfig } from 'vitest/config';

// One root config; the projects split tests by audience: `unit` needs no network, root or services;
// `integration` runs against the real registry, squashfs tools, MongoDB (FerretDB), Redis, munged and the runtime
// that scripts/test-harness.sh starts.
const resolve = { conditions: ['@shifter/source'] };

export default defineConfig({
  test: {
    clearMocks: true,
    restoreMocks: true,
    projects: [
      {
        resolve,
        ssr: { resolve: { conditions: ['@shifter/source'] } },
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'packages/*/test/unit/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', '**/node_modules/**', '**/dist/**'],
          testTimeout: 20_000,
        },
      },
      {
        resolve,
        ssr: { resolve: { conditions: ['@shifter/source'] } },
        test: {
          name: 'integration',
          include: ['packages/*/test/integration/**/*.int.test.ts', 'examples/**/*.int.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
