// Upstream's ~/.udiRoot/.cred decoded through the real munged, as upstream's client does: expired credentials are
// accepted (they were made at login), and a line someone else's munge credential holds is never used.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { describe, expect, it } from 'vitest';
import { CredentialStore } from '../../src/credential-store.js';
import { unmungeDecoder } from '../../src/upstream-cred.js';

const ready = haveServices('munge', 'user') && haveRoot();

function munge(payload: string, options: { user?: string; ttl?: number } = {}): string {
  const args = ['-S', serviceValue('munge'), '-s', payload, ...(options.ttl ? ['-t', String(options.ttl)] : [])];
  const [command, argv] = options.user ? ['runuser', ['-u', options.user, '--', 'munge', ...args]] : ['munge', args];
  return execFileSync(command as string, argv as string[], { encoding: 'utf8' }).trim();
}

describe.skipIf(!ready)("upstream's .cred through munged", () => {
  it("keeps the caller's logins, expired or replayed, and drops another user's credential", async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-munge-'));
    try {
      await mkdir(join(home, '.udiRoot'), { mode: 0o700 });
      const expired = munge('alice:s3:cret', { ttl: 1 });
      const other = munge('mallory:x', { user: process.env.SHIFTER_TEST_USER ?? 'shiftertest' });
      const fresh = munge('bob:pw');
      await writeFile(
        join(home, '.udiRoot', '.cred'),
        `sys:default=${expired}\nsys:planted=${other}\nsys:reg.example:5000=${fresh}\nsys:bad=MUNGE:garbage:\n`,
        { mode: 0o600 },
      );
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const store = new CredentialStore(home, { upstream: unmungeDecoder(serviceValue('munge')) });
      expect(await store.read('sys')).toEqual({ default: 'alice:s3:cret', 'reg.example:5000': 'bob:pw' });
      // Read again: every credential is now a replay, which upstream accepts too.
      expect(await store.read('sys')).toEqual({ default: 'alice:s3:cret', 'reg.example:5000': 'bob:pw' });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
