import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    internal: 'src/internal.ts',
    'testing/index': 'src/testing/index.ts',
    'adapters/mongo/index': 'src/adapters/mongo/index.ts',
    'adapters/redis/index': 'src/adapters/redis/index.ts',
  },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // The contract suites in ./testing run inside the caller's vitest; never bundle it.
  external: ['vitest'],
});
