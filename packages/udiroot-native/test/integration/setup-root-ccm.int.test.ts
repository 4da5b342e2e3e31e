/**
 * `setupRoot … local /`: the CCM mode of upstream's Slurm plugin. The prolog builds a container root from the host's
 * own tree (with the site's generated /etc, kernel file systems and modules) in the global mount namespace; later
 * `shifter --image=local:/` calls of the same user reuse it; unsetupRoot removes it. Only with allowLocalChroot=1.
 * Run with the real setuid runtime, as root, for the test user and a second (hostile) user.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { runSetupRoot } from '../../src/index.js';
import { run, RuntimeEnv } from './runtime-env.js';

const enabled = haveRoot() && haveServices('user');

describe.skipIf(!enabled)('setupRoot local / (CCM mode)', () => {
  let env: RuntimeEnv;
  let user: string;
  let user2: string;
  let uid: string;
  let gid: string;

  const setupRoot = (...args: string[]) => run(env.setupRoot, ['-u', user, '-U', uid, '-G', gid, ...args]);

  beforeAll(() => {
    user = serviceValue('user');
    user2 = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    uid = execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim();
    gid = execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim();
    env = new RuntimeEnv();
  }, 120_000);

  afterAll(() => env?.cleanup());

  it('is refused without allowLocalChroot=1 (also when spelt allowLocalChroot=yes, read as 0) and leaves nothing mounted', async () => {
    env.writeConf();
    const off = await setupRoot('local', '/');
    expect(off.status).toBe(77);
    expect(off.stderr).toContain('allowLocalChroot=1');
    env.writeConf('allowLocalChroot=yes\n');
    const yes = await setupRoot('local', '/');
    expect(yes.status).toBe(77);
    expect(yes.stderr).toContain('allowLocalChroot=yes is not 0 or 1: read as 0 (off)');
    expect(env.mounts()).toEqual([]);
  });

  it('builds the host tree as the root in the global namespace; shifter --image=local:/ reuses it; unsetupRoot removes it', async () => {
    env.writeConf('allowLocalChroot=1\n');
    // Through the TypeScript wrapper a prolog script would use: `setupRoot -N node1/2 … local /`.
    const setup = await runSetupRoot({
      programPath: env.setupRoot,
      localRoot: '/',
      user,
      uid: Number(uid),
      gid: Number(gid),
      hosts: { node1: 2 },
    });
    expect(setup.args.slice(-2)).toEqual(['local', '/']);
    expect(setup.stderr).toBe('');
    expect(setup.exitCode).toBe(0);
    // Built in the global namespace: visible here, with the host's own directories and the site's generated /etc.
    expect(env.mounts()).toContain(env.udiMount);
    expect(existsSync(join(env.udiMount, 'usr', 'bin', 'env'))).toBe(true);
    expect(readFileSync(join(env.udiMount, 'etc', 'passwd'), 'utf8')).toContain(`${user}:x:${uid}:${gid}:`);
    expect(readFileSync(join(env.udiMount, 'var', 'hostsfile'), 'utf8')).toBe('node1\nnode1\n');
    // The root is read-only after setup (mountUdiRootWritable unset = 0, as upstream).
    expect(() => execFileSync('touch', [join(env.udiMount, 'probe')], { stdio: 'pipe' })).toThrow();

    const hostVersion = readFileSync('/etc/debian_version', 'utf8');
    const reuse = await env.runAs(user, [
      '--image=local:/',
      '--verbose',
      'sh',
      '-c',
      'cat /etc/debian_version; id -un; cat /var/hostsfile',
    ]);
    expect(reuse.stderr).toContain('reusing');
    expect(reuse.status).toBe(0);
    expect(reuse.stdout).toBe(`${hostVersion}${user}\nnode1\nnode1\n`);

    // The other user does not get this user's root: shifter builds them a private one (no hostsfile there).
    const other = await env.runAs(user2, [
      '--image=local:/',
      '--verbose',
      'sh',
      '-c',
      'id -un; cat /var/hostsfile 2>/dev/null; true',
    ]);
    expect(other.stderr).not.toContain('reusing');
    expect(other.stdout).toBe(`${user2}\n`);

    const teardown = await run(env.unsetupRoot, []);
    expect(teardown.status).toBe(0);
    expect(env.mounts()).toEqual([]);
  });

  it('opens the local directory as the user: a directory the user cannot reach is refused (66)', async () => {
    env.writeConf('allowLocalChroot=1\n');
    const hidden = join(env.dir, 'root-only');
    mkdirSync(join(hidden, 'tree', 'usr'), { recursive: true });
    chmodSync(hidden, 0o700);
    const r = await setupRoot('local', join(hidden, 'tree'));
    expect(r.status).toBe(66);
    expect(env.mounts()).toEqual([]);
    // A relative path is not a directory the prolog could mean.
    expect((await setupRoot('local', 'usr')).status).toBe(65);
  });
});
