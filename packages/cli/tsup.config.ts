import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { defineConfig, type Options } from 'tsup';
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

const shared: Options = {
  platform: 'node',
  target: 'node20',
  dts: false,
  sourcemap: true,
  splitting: false,
  minify: true,
  noExternal: [/.*/],
  esbuildPlugins: [leaveBenchOutside],
};

function esbuildOptions(options: { conditions?: string[]; external?: string[] }): void {
  options.conditions = ['@shifter/source'];
  // Set here because tsup's noExternal wins over its own external list. Never needed at run time: oclif loads
  // typescript only for development builds, and the store drivers are not used by the client.
  options.external = ['typescript', 'better-sqlite3', 'mongodb', 'ioredis', 'bullmq'];
}

// Self-contained files: `shifterimg lookup` is run by job scripts and the runtime on every job start, and Node spends
// most of a cold start resolving, compiling and evaluating modules, so everything (oclif, the core client) is
// bundled and tree-shaken from sources.
const builds: Options[] = [
  {
    // The whole CLI (oclif), loaded for every command except plain lookups.
    ...shared,
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    clean: false,
    esbuildOptions,
    // Bundled CommonJS dependencies call require() for Node built-ins.
    banner: {
      js: "import { createRequire as __shifterCreateRequire } from 'node:module'; const require = __shifterCreateRequire(import.meta.url);",
    },
  },
  {
    // The argument reordering of upstream's option order (no dependencies), which bin/run.cjs applies before it picks
    // the lookup fast path or the full CLI.
    ...shared,
    entry: { 'upstream-argv': 'src/upstream-argv.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    clean: false,
    esbuildOptions,
  },
  {
    // The oclif-free lookup fast path, as CommonJS: bin/run.cjs require()s it without starting Node's ESM loader,
    // which saves about 30 ms of CPU per lookup on the 2-core VM.
    ...shared,
    entry: { 'fast-lookup': 'src/fast-lookup.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    clean: false,
    esbuildOptions(options) {
      esbuildOptions(options);
      // core finds its munge addon relative to import.meta.url, which CommonJS does not have.
      options.define = { ...options.define, 'import.meta.url': '__shifterImportMetaUrl' };
    },
    banner: { js: "const __shifterImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
    onSuccess: async () => copyMungeAddon(),
  },
  {
    // The one-file shifterimg of login nodes (docs/install.md): the CLI and the lookup fast path in one ES module
    // that needs only Node >= 20. No source map: it is installed alone.
    ...shared,
    sourcemap: false,
    entry: { shifterimg: 'src/standalone.ts' },
    format: ['esm'],
    outExtension: () => ({ js: '.mjs' }),
    clean: false,
    esbuildOptions(options) {
      esbuildOptions(options);
      const pjson = JSON.parse(readFileSync('package.json', 'utf8'));
      options.define = {
        ...options.define,
        __SHIFTERIMG_PJSON__: JSON.stringify({ name: pjson.name, version: pjson.version, oclif: pjson.oclif }),
      };
    },
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __shifterCreateRequire } from 'node:module'; const require = __shifterCreateRequire(import.meta.url);",
    },
  },
];

// The CLI integration test runs `SHIFTER_CLI_METAFILE=1 tsup --metafile` to check what the two bundles of the lookup
// and command paths import. tsup names a metafile by its format only, so with every build two ESM (and two CommonJS)
// builds would overwrite each other's, whichever finishes last: that run builds just those two.
const metafileBuilds = ['index', 'fast-lookup'];
export default defineConfig(
  process.env.SHIFTER_CLI_METAFILE
    ? builds.filter((build) =>
        Object.keys(build.entry as Record<string, string>).some((key) => metafileBuilds.includes(key)),
      )
    : builds,
);
