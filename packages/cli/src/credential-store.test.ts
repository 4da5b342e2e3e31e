import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CredentialStore } from './credential-store.js';

describe('CredentialStore', () => {
  it('tightens a loose existing directory and replaces logins per system and location', async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-'));
    try {
      await mkdir(join(home, '.udiRoot'), { mode: 0o755 });
      await chmod(join(home, '.udiRoot'), 0o755);
      const store = new CredentialStore(home);
      await store.save('a', 'default', 'u1', 'p1');
      await store.save('a', 'default', 'u2', 'p2');
      await store.save('a', 'reg:5000', 'u3', 'p3');
      expect((await stat(store.directory)).mode & 0o777).toBe(0o700);
      expect(await store.read('a')).toEqual({ default: 'u2:p2', 'reg:5000': 'u3:p3' });
      expect(await store.read('b')).toEqual({});
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('refuses bad user names and locations and rejects a corrupt store', async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-'));
    try {
      const store = new CredentialStore(home);
      await expect(store.save('a', 'default', 'a:b', 'p')).rejects.toMatchObject({
        code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
      });
      await expect(store.save('a', '../x', 'u', 'p')).rejects.toMatchObject({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' });
      await mkdir(store.directory, { recursive: true, mode: 0o700 });
      await writeFile(store.path, '{"nope": true}', { mode: 0o600 });
      await expect(store.read('a')).rejects.toMatchObject({ code: 'SHIFTER_CONFIG_INVALID' });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
