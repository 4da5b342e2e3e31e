/**
 * The runtime against tampered image files: a hostile user (shiftertest) tries to use the private image of another
 * user (shiftertest2) through a `.meta`, image file or image directory that someone other than root (or the site's
 * `imageWriter`) could write, or that is a symbolic link to the attacker's own file. Each is refused with exit 79
 * (UDI_EX_UNTRUSTED); afterwards the private image is still private and still usable by its owner. A perNodeCache
 * setup that fails, or whose process is killed, leaves nothing in the cache directory.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UDI_EXIT_CODES } from '../../src/exit-codes.js';
import { RuntimeEnv } from './runtime-env.js';

const enabled = haveRoot() && haveServices('user', 'registry');
const UNTRUSTED = UDI_EXIT_CODES.UDI_EX_UNTRUSTED;
const idOf = (name: string, flag = '-u'): number =>
  Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());

describe.skipIf(!enabled)('runtime refuses tampered image files (setuid shifter as two real users)', () => {
  let env: RuntimeEnv;
  let attacker: string;
  let victim: string;
  let attackerUid: number;
  let victimUid: number;
  let busybox: string;
  const privateId = 'b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1';
  const publicId = 'c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2';
  let privateMeta: string;
  let attackerDir: string;

  beforeAll(async () => {
    attacker = serviceValue('user');
    victim = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    attackerUid = idOf(attacker);
    victimUid = idOf(victim);
    env = new RuntimeEnv();
    env.writeConf();
    busybox = await env.pullFromRegistry(serviceValue('registry'), 'busybox:latest');
    privateMeta = `FORMAT: squashfs\nUSERACL: ${victimUid}\n`;
    env.aliasImage(busybox, privateId, privateMeta, 0o600);
    env.aliasImage(busybox, publicId, 'FORMAT: squashfs\n');
    attackerDir = join(env.dir, 'attacker');
    mkdirSync(attackerDir, { mode: 0o755 });
    chownSync(attackerDir, attackerUid, idOf(attacker, '-g'));
  }, 300_000);

  afterAll(() => env?.cleanup());

  const metaPath = (id: string): string => join(env.imagePath, `${id}.meta`);
  const imagePath = (id: string): string => join(env.imagePath, `${id}.squashfs`);

  /** Put the private image's files back as the gateway writes them. */
  function restore(): void {
    rmSync(metaPath(privateId), { force: true });
    writeFileSync(metaPath(privateId), privateMeta, { mode: 0o644 });
    chmodSync(metaPath(privateId), 0o644);
    chmodSync(env.imagePath, 0o755);
    chownSync(env.imagePath, 0, 0);
    env.writeConf();
  }
  afterEach(() => restore());

  /** The victim's image is private and usable by the victim. */
  async function stillPrivate(): Promise<void> {
    restore();
    const denied = await env.runAs(attacker, [`--image=id:${privateId}`, 'true']);
    expect(denied.status).toBe(UDI_EXIT_CODES.UDI_EX_NOPERM);
    const allowed = await env.runAs(victim, [`--image=id:${privateId}`, 'echo', 'ok']);
    expect(allowed.stdout).toBe('ok\n');
  }

  it('a world-writable .meta the attacker stripped of USERACL is refused, for everyone', async () => {
    chmodSync(metaPath(privateId), 0o666);
    const strip = await env.runAs(attacker, ['-c', `printf 'FORMAT: squashfs\\n' > ${metaPath(privateId)}`], {
      program: '/bin/sh',
    });
    expect(strip.status).toBe(0);
    const r = await env.runAs(attacker, [`--image=id:${privateId}`, 'cat', '/etc/hostname']);
    expect(r.status).toBe(UNTRUSTED);
    expect(r.stderr).toContain('writable by group or others');
    expect((await env.runAs(victim, [`--image=id:${privateId}`, 'true'])).status).toBe(UNTRUSTED);
    await stillPrivate();
  });

  it('a .meta owned by the attacker is refused', async () => {
    writeFileSync(metaPath(privateId), 'FORMAT: squashfs\n');
    chownSync(metaPath(privateId), attackerUid, attackerUid);
    chmodSync(metaPath(privateId), 0o644);
    const r = await env.runAs(attacker, [`--image=id:${privateId}`, 'true']);
    expect(r.status).toBe(UNTRUSTED);
    expect(r.stderr).toContain('is not owned by root');
    await stillPrivate();
  });

  it(".meta as a symlink to the attacker's own file is refused (not followed)", async () => {
    const own = join(attackerDir, 'my.meta');
    writeFileSync(own, 'FORMAT: squashfs\n');
    chownSync(own, attackerUid, attackerUid);
    rmSync(metaPath(privateId));
    symlinkSync(own, metaPath(privateId));
    const r = await env.runAs(attacker, [`--image=id:${privateId}`, 'true']);
    expect(r.status).toBe(UNTRUSTED);
    expect(r.stderr).toContain('symbolic link');
    // Even a symlink to a root-owned, well-formed .meta is refused: nothing in the image directory is followed.
    rmSync(metaPath(privateId));
    writeFileSync(join(env.dir, 'root.meta'), 'FORMAT: squashfs\n', { mode: 0o644 });
    symlinkSync(join(env.dir, 'root.meta'), metaPath(privateId));
    expect((await env.runAs(victim, [`--image=id:${privateId}`, 'true'])).status).toBe(UNTRUSTED);
    await stillPrivate();
  });

  it('a group- or world-writable image file, or a symlinked one, is refused on the descriptor the loop device gets', async () => {
    chmodSync(imagePath(publicId), 0o666);
    const writable = await env.runAs(attacker, [`--image=id:${publicId}`, 'true']);
    expect(writable.status).toBe(UNTRUSTED);
    expect(writable.stderr).toContain('writable by group or others');
    chmodSync(imagePath(publicId), 0o644);
    const moved = join(env.dir, 'moved.squashfs');
    renameSync(imagePath(publicId), moved);
    symlinkSync(moved, imagePath(publicId));
    const linked = await env.runAs(attacker, [`--image=id:${publicId}`, 'true']);
    expect(linked.status).toBe(UNTRUSTED);
    expect(linked.stderr).toContain('symbolic link');
    rmSync(imagePath(publicId));
    renameSync(moved, imagePath(publicId));
    expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'echo', 'ok'])).stdout).toBe('ok\n');
    await stillPrivate();
  });

  it('a world-writable or attacker-owned image directory, or a symlinked imagePath, is refused', async () => {
    chmodSync(env.imagePath, 0o777);
    expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'true'])).status).toBe(UNTRUSTED);
    chmodSync(env.imagePath, 0o755);
    chownSync(env.imagePath, attackerUid, attackerUid);
    expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'true'])).status).toBe(UNTRUSTED);
    chownSync(env.imagePath, 0, 0);
    const link = join(env.dir, 'images-link');
    symlinkSync(env.imagePath, link);
    writeFileSync(env.confPath, readConf(env).replace(`imagePath=${env.imagePath}`, `imagePath=${link}`));
    const r = await env.runAs(attacker, [`--image=id:${publicId}`, 'true']);
    expect(r.status).toBe(UNTRUSTED);
    expect(r.stderr).toContain('symbolic link');
    await stillPrivate();
  });

  it('image files owned by the imageWriter account are accepted only when udiRoot.conf names it', async () => {
    const writer = 'daemon';
    const writerUid = idOf(writer);
    chownSync(metaPath(publicId), writerUid, writerUid);
    chownSync(imagePath(publicId), writerUid, writerUid);
    try {
      expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'true'])).status).toBe(UNTRUSTED);
      env.writeConf(`imageWriter=${writer}\n`);
      expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'echo', 'ok'])).stdout).toBe('ok\n');
      // Naming the writer does not make the attacker's files trusted.
      env.writeConf(`imageWriter=${writerUid}\n`);
      chownSync(metaPath(publicId), attackerUid, attackerUid);
      expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'true'])).status).toBe(UNTRUSTED);
      env.writeConf('imageWriter=no-such-account-xyz\n');
      expect((await env.runAs(attacker, [`--image=id:${publicId}`, 'true'])).status).toBe(UDI_EXIT_CODES.UDI_EX_CONFIG);
    } finally {
      chownSync(metaPath(publicId), 0, 0);
      chownSync(imagePath(publicId), 0, 0);
    }
    await stillPrivate();
  });

  it('a perNodeCache setup that fails, or is killed, leaves nothing in the cache directory', async () => {
    const cacheDir = join(env.dir, 'pernode-fail');
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    const failing = join(env.dir, 'mkfs-fails');
    writeFileSync(failing, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const killing = join(env.dir, 'mkfs-kills');
    // Kill the runtime (our parent) while the backing file exists and is being formatted.
    writeFileSync(killing, '#!/bin/sh\nkill -9 $PPID\nexit 1\n', { mode: 0o755 });
    for (const [mkfs, status] of [
      [failing, UDI_EXIT_CODES.UDI_EX_OSERR],
      [killing, null],
    ] as const) {
      env.writeConf(`perNodeCachePath=${cacheDir}\nperNodeCacheSizeLimit=1G\nmkfsXfsPath=${mkfs}\n`);
      const r = await env.runAs(attacker, [
        `--image=id:${busybox}`,
        '--volume=/tmp:/cache:perNodeCache=size=64M',
        'true',
      ]);
      if (status === null) expect(r.status).not.toBe(0);
      else expect(r.status).toBe(status);
      expect(readdirSync(cacheDir)).toEqual([]);
    }
    // And /tmp (the default perNodeCachePath) holds no backing file of ours either.
    expect(readdirSync('/tmp').filter((name) => name.startsWith(`perNodeCache_uid${attackerUid}_`))).toEqual([]);
    spawnSync(env.unsetupRoot, [], { stdio: 'ignore' });
    await stillPrivate();
  });
});

function readConf(env: RuntimeEnv): string {
  return execFileSync('cat', [env.confPath], { encoding: 'utf8' });
}
