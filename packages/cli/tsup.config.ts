import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { defineConfig } from 'tsup';
import type { Plugin } from 'esbuild';

// core's libmunge addon is looked up relative to the module that loads it, which in the bundle is dist/*.js: one of
// its candidates is ../native/build/Release/. Copy it there when it is built; without it the CLI runs `munge`.
const ADDON = '../core/native/build/Release/shifter_munge.node';
const ADDON_COPY = 'native/build/Release/shifter_munge.node';
function copyMungeAddon(): void {
  if (!existsSync(ADDON)) return;
  mkdirSync('native/build/Release', { recursive: true });
  copyFileSync(ADDON, ADDON_COPY);
}

// Core's composition root can import benchmark helpers from bench/ at run time; a client never runs that path, and
// bundling it would drag the whole core (zod, undici, better-sqlite3) into the CLI. Such imports stay dynamic and
// external.
const leaveBenchOutside: Plugin = {
  name: 'leave-bench-outside',
  setup(build) {
    build.onResolve({ filter: /\/bench\// }, (args) => ({ path: args.path, external: true }));
  },
};

// One self-contained file: `shifterimg lookup` is run by job scripts and the runtime on every job start, and Node
// spends most of a cold start resolving and compiling modules, so everything (oclif, the core client) is bundled and
// tree-shaken from sources.
export default defineConfig({
  // fast-lookup is a separate, oclif-free file: bin/run.js serves plain `lookup` calls from it.
  entry: { index: 'src/index.ts', 'fast-lookup': 'src/fast-lookup.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  dts: false,
  sourcemap: true,
  clean: true,
  splitting: false,
  minify: true,
  noExternal: [/.*/],
  // Never needed at run time: oclif only loads typescript for development builds; the store drivers are not used
  // by the client and must not be dragged in by accident.
  esbuildPlugins: [leaveBenchOutside],
  onSuccess: async () => copyMungeAddon(),
  esbuildOptions(options) {
    options.conditions = ['@shifter/source'];
    // Set here because tsup's noExternal wins over its own external list.
    options.external = ['typescript', 'better-sqlite3', 'mongodb', 'ioredis', 'bullmq'];
  },
  // Bundled CommonJS dependencies call require() for Node built-ins.
  banner: { js: "import { createRequire as __shifterCreateRequire } from 'node:module'; const require = __shifterCreateRequire(import.meta.url);" },
});
