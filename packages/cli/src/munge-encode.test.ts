import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mungeEncodeWithCli } from './munge-encode.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fake-munge-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fakeMunge(script: string): Promise<string> {
  const path = join(dir, `munge-${Math.random().toString(36).slice(2)}`);
  await writeFile(path, `#!/bin/sh\n${script}\n`);
  await chmod(path, 0o755);
  return path;
}

describe('mungeEncodeWithCli', () => {
  it('passes the payload on stdin, never in the arguments, and returns the credential', async () => {
    const log = join(dir, 'log');
    const executable = await fakeMunge(`echo "$@" > ${log}.args; cat > ${log}.stdin; echo "MUNGE:abc:"`);
    const credential = await mungeEncodeWithCli('{"authorized_locations":{"default":"u:secret"}}', {
      executable,
      socketPath: '/run/x.sock',
    });
    expect(credential).toBe('MUNGE:abc:');
    expect((await readFile(`${log}.args`, 'utf8')).trim()).toBe('-S /run/x.sock');
    expect(await readFile(`${log}.stdin`, 'utf8')).toBe('{"authorized_locations":{"default":"u:secret"}}');
  });

  it('reports a munged that cannot be reached as SHIFTER_AUTH_UNAVAILABLE', async () => {
    const executable = await fakeMunge(
      'cat >/dev/null; echo "munge: Error: Failed to access \\"/run/x.sock\\": No such file" >&2; exit 6',
    );
    await expect(mungeEncodeWithCli('', { executable })).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_UNAVAILABLE',
      message: expect.stringContaining('Failed to access'),
    });
  });

  it('reports a missing munge executable as SHIFTER_AUTH_UNAVAILABLE', async () => {
    await expect(mungeEncodeWithCli('', { executable: join(dir, 'does-not-exist') })).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_UNAVAILABLE',
      message: expect.stringContaining('ENOENT'),
    });
  });
});
