import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('bin/run.cjs without a build', () => {
  it('says so in one line and exits 69 instead of printing a stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifterimg-unbuilt-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(new URL('../../bin/run.cjs', import.meta.url), join(dir, 'bin', 'run.cjs'));
      const result = spawnSync(process.execPath, [join(dir, 'bin', 'run.cjs'), 'images'], { encoding: 'utf8' });
      expect(result.status).toBe(69);
      expect(result.stdout).toBe('');
      expect(result.stderr.trimEnd().split('\n')).toEqual([
        `shifterimg: not built (${join(dir, 'dist', 'fast-lookup.cjs')} is missing): run \`npm run build\` in the Shifter checkout, or install the one-file shifterimg (docs/install.md)`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
