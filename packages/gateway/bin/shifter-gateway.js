#!/usr/bin/env node
// Runs the built CLI (dist/cli.js). In a source checkout without a build it re-executes itself on the TypeScript
// sources through tsx with the `@shifter/source` condition, so `shifter-gateway` works before `npm run build`.
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const built = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (existsSync(built) && process.env.SHIFTER_GATEWAY_FROM_SOURCE !== '1') {
  await import(built);
} else {
  const source = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
  const tsx = import.meta.resolve('tsx');
  const child = spawn(
    process.execPath,
    ['--conditions=@shifter/source', '--import', tsx, source, ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      cwd: process.cwd(),
    },
  );
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
}
