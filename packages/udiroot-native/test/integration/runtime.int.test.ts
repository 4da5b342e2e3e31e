/**
 * The setuid runtime end to end, as root in CI with the real unprivileged test user and images pulled and converted
 * by @shifter/core from the test registry: upstream's five integration checks, the volume validation matrix, the
 * entrypoint/cmd matrix, environment precedence, the escape suite, exit 127, modules and site mounts, leak checks
 * and setupRoot/unsetupRoot reuse.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { runSetupRoot, runUnsetupRoot } from '../../src/index.js';
import { RuntimeEnv, run } from './runtime-env.js';

const enabled = haveRoot() && haveServices('user', 'registry');

/** Kernel teardown of a namespace and its autoclear loop devices finishes shortly after the process is gone. */
async function settled(check: () => string[], timeoutMs = 5000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = check();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    left = check();
  }
  return left;
}

function environOf(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split('\0')
      .filter((entry) => entry.includes('='))
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  );
}

describe.skipIf(!enabled)('udiRoot runtime (setuid shifter as the test user)', () => {
  let env: RuntimeEnv;
  let user: string;
  let user2: string;
  let busybox: string;
  const entryId = 'e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0';
  const privateId = 'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0';
  const suidId = '5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e';
  let scratch: string;

  beforeAll(async () => {
    user = serviceValue('user');
    user2 = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    env = new RuntimeEnv();
    env.writeConf();
    busybox = await env.pullFromRegistry(serviceValue('registry'), 'busybox:latest');
    env.aliasImage(busybox, entryId, "FORMAT: squashfs\nENTRY: [u'echo', u'howdy']\nCMD: [u'guys']\nWORKDIR: /etc\n");
    // A private image: mode 0600 like the gateway writes them, ACL naming only the second test user.
    const uid2 = Number(execFileSync('id', ['-u', user2], { encoding: 'utf8' }).trim());
    env.aliasImage(busybox, privateId, `FORMAT: squashfs\nUSERACL: ${uid2}\n`, 0o600);
    // An image holding a setuid-root program that reports its effective uid.
    const suidRoot = join(env.dir, 'suid-root');
    mkdirSync(join(suidRoot, 'bin'), { recursive: true });
    const source = join(env.dir, 'probe.c');
    writeFileSync(
      source,
      '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("euid=%d uid=%d\\n",(int)geteuid(),(int)getuid());return setuid(0)==0?3:0;}\n',
    );
    execFileSync('gcc', ['-static', '-O2', '-o', join(suidRoot, 'bin', 'probe'), source]);
    chmodSync(join(suidRoot, 'bin', 'probe'), 0o4755);
    execFileSync('mksquashfs', [
      suidRoot,
      join(env.imagePath, `${suidId}.squashfs`),
      '-noappend',
      '-quiet',
      '-no-progress',
    ]);
    writeFileSync(join(env.imagePath, `${suidId}.meta`), 'FORMAT: squashfs\n');
    scratch = join(env.dir, 'userscratch');
    mkdirSync(scratch, { mode: 0o755 });
    chownSync(
      scratch,
      Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })),
      Number(execFileSync('id', ['-g', user], { encoding: 'utf8' })),
    );
  }, 300_000);

  afterAll(() => env?.cleanup());

  describe("upstream's five integration checks", () => {
    it('runs echo test', async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'echo', 'test']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('test\n');
    });

    it('leaves no capability: CapInh/CapPrm/CapEff/CapBnd all zero', async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'cat', '/proc/self/status']);
      expect(r.status).toBe(0);
      for (const field of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
        expect(r.stdout).toMatch(new RegExp(`^${field}:\\s+0000000000000000$`, 'm'));
      }
      expect(r.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
      const uid = execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim();
      expect(r.stdout).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
    });

    it('makes /etc/mtab a symlink to /proc/mounts', async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'readlink', '/etc/mtab']);
      expect(r.stdout.trim()).toBe('/proc/mounts');
    });

    it("holds the user's passwd line", async () => {
      const line = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'cat', '/etc/passwd']);
      expect(r.stdout.split('\n')).toContain(line);
      expect(r.stdout).not.toMatch(/^root:/m);
    });

    it('writes var/shifterConfig.json with the exact upstream content', async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'cat', '/var/shifterConfig.json']);
      expect(r.stdout).toBe(`{"identifier":"${busybox}","user":"${user}","volMap":"","modules":""}`);
    });
  });

  describe('entrypoint/cmd matrix (image ENTRY [echo howdy], CMD [guys])', () => {
    it.each([
      [[], 'howdy guys'],
      [['you'], 'howdy you'],
      [['--entrypoint=echo'], ''],
      [['--entrypoint=echo', 'you'], 'you'],
    ])('--entrypoint %j', async (extra, expected) => {
      const args = [
        `--image=id:${entryId}`,
        extra[0]?.startsWith('--') ? extra[0] : '--entrypoint',
        ...extra.filter((a) => !a.startsWith('--')),
      ];
      const r = await env.runAs(user, args);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${expected}\n`);
    });

    it('without --entrypoint runs the given command and ignores ENTRY/CMD', async () => {
      const r = await env.runAs(user, [`--image=id:${entryId}`, 'echo', 'plain']);
      expect(r.stdout).toBe('plain\n');
    });

    it('without --entrypoint and without a command runs /bin/sh', async () => {
      const r = await env.runAs(user, [`--image=id:${entryId}`], { input: 'echo "from $0"; exit 5\n' });
      expect(r.stdout).toBe('from /bin/sh\n');
      expect(r.status).toBe(5);
    });

    it('--entrypoint on an image without ENTRY is refused', async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, '--entrypoint']);
      expect(r.status).toBe(65);
      expect(r.stderr).toContain('entrypoint');
    });

    it('--workdir uses the image WORKDIR, --workdir=DIR that directory, default the current directory', async () => {
      expect((await env.runAs(user, [`--image=id:${entryId}`, '--workdir', 'pwd'])).stdout).toBe('/etc\n');
      expect((await env.runAs(user, [`--image=id:${entryId}`, '--workdir=/usr', 'pwd'])).stdout).toBe('/usr\n');
      expect((await env.runAs(user, [`--image=id:${entryId}`, 'pwd'], { cwd: '/tmp' })).stdout).toBe('/tmp\n');
      const none = await env.runAs(user, [`--image=id:${suidId}`, '--workdir', '/bin/probe']); // no WORKDIR
      expect(none.status).toBe(65);
    });
  });

  describe('environment precedence', () => {
    it('host < SHIFTER_* < image ENV < --env-file < --env < modules < site; site prepend/append/unset', async () => {
      env.writeConf(
        'siteEnv=SITE=1 OVERRIDE=site\nsiteEnvPrepend=PATH=/sbin\nsiteEnvAppend=PATH=/opt/udiImage/bin\nsiteEnvUnset=NEW_VAR\n' +
          'module_m_siteEnv=OVERRIDE=module MOD=1\ndefaultModules=m\n',
      );
      const envFile = join(scratch, 'env-file');
      writeFileSync(envFile, '# comment\n\nFROMFILE=file\nBOTH=file\n');
      chmodSync(envFile, 0o644);
      try {
        const r = await env.runAs(
          user,
          [
            `--image=id:${busybox}`,
            `--env-file=${envFile}`,
            '--env=BOTH=cli',
            '--env=OVERRIDE=cli',
            'cat',
            '/proc/self/environ',
          ],
          {
            env: { PATH: '/incorrect', NEW_VAR: '1', HOSTVAR: 'host' },
          },
        );
        expect(r.status).toBe(0);
        const e = environOf(r.stdout);
        expect(e.PATH).toBe('/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/udiImage/bin');
        expect(e.NEW_VAR).toBeUndefined();
        expect(e.HOSTVAR).toBe('host');
        expect(e.FROMFILE).toBe('file');
        expect(e.BOTH).toBe('cli');
        expect(e.OVERRIDE).toBe('site');
        expect(e.MOD).toBe('1');
        expect(e.SITE).toBe('1');
        expect(e.SHIFTER_IMAGE).toBe(busybox);
        expect(e.SHIFTER_IMAGEREQUEST).toBe(`id:${busybox}`);
        const cleared = await env.runAs(user, [`--image=id:${busybox}`, '--clearenv', 'cat', '/proc/self/environ'], {
          env: { HOSTVAR: 'host' },
        });
        expect(environOf(cleared.stdout).HOSTVAR).toBeUndefined();
        expect(environOf(cleared.stdout).SHIFTER_IMAGE).toBe(busybox);
      } finally {
        env.writeConf();
      }
    });

    it('takes the image from SHIFTER_IMAGETYPE/SHIFTER_IMAGE and SHIFTER_IMAGEREQUEST', async () => {
      expect(
        (await env.runAs(user, ['echo', 'a'], { env: { SHIFTER_IMAGETYPE: 'id', SHIFTER_IMAGE: busybox } })).stdout,
      ).toBe('a\n');
      expect((await env.runAs(user, ['echo', 'b'], { env: { SHIFTER_IMAGEREQUEST: `id:${busybox}` } })).stdout).toBe(
        'b\n',
      );
      expect((await env.runAs(user, ['echo', 'c'])).status).toBe(64);
    });

    it('refuses --env without a value and an --env-file the user cannot read', async () => {
      expect((await env.runAs(user, [`--image=id:${busybox}`, '--env=A', 'true'])).status).toBe(64);
      expect((await env.runAs(user, [`--image=id:${busybox}`, '--env-file=/etc/shadow', 'true'])).status).toBe(64);
    });
  });

  describe('volumes', () => {
    it('binds a directory visible in the container, read-write and read-only', async () => {
      const data = join(scratch, 'data');
      mkdirSync(data, { recursive: true });
      chownSync(data, Number(execFileSync('id', ['-u', user], { encoding: 'utf8' })), 0);
      writeFileSync(join(data, 'in.txt'), 'hello');
      const rw = await env.runAs(user, [
        `--image=id:${busybox}`,
        `--volume=${data}:/data`,
        'sh',
        '-c',
        'cat /data/in.txt && echo out > /data/out.txt',
      ]);
      expect(rw.stderr).toBe('');
      expect(rw.stdout).toBe('hello');
      expect(readFileSync(join(data, 'out.txt'), 'utf8')).toBe('out\n');
      const ro = await env.runAs(user, [
        `--image=id:${busybox}`,
        `--volume=${data}:/data:ro`,
        'sh',
        '-c',
        'echo x > /data/ro.txt',
      ]);
      expect(ro.status).not.toBe(0);
      const vt = await env.runAs(user, [
        `--image=id:${busybox}`,
        `--volume=${data}:/var/tmp`,
        'cat',
        '/var/tmp/in.txt',
      ]);
      expect(vt.stdout).toBe('hello');
    });

    it.each([
      ['/etc', 65],
      ['/etc/passwd', 65],
      ['/etc/ssh', 65],
      ['/var/log', 65],
      ['/opt', 65],
      ['/opt/udiImage', 65],
      ['/proc/sys', 65],
      ['/dev/shm', 65],
      ['/sys/kernel', 65],
    ])('refuses a user volume onto %s', async (target, status) => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, `--volume=${scratch}:${target}`, 'true']);
      expect(r.status).toBe(status);
    });

    it('refuses user-only-forbidden flags and malformed maps', async () => {
      expect((await env.runAs(user, [`--image=id:${busybox}`, `--volume=${scratch}:/data:rec`, 'true'])).status).toBe(
        65,
      );
      expect((await env.runAs(user, [`--image=id:${busybox}`, `--volume=${scratch}`, 'true'])).status).toBe(65);
      expect((await env.runAs(user, [`--image=id:${busybox}`, `--volume=/does/not/exist:/data`, 'true'])).status).toBe(
        65,
      );
    });

    it('resolves the source inside the container: a symlink to /etc gives the container /etc, not the host one', async () => {
      const link = join(scratch, 'etc-link');
      spawnSync('rm', ['-f', link]);
      symlinkSync('/etc', link);
      const r = await env.runAs(user, [`--image=id:${busybox}`, `--volume=${link}:/data`, 'cat', '/data/passwd']);
      expect(r.status).toBe(0);
      expect(r.stdout).not.toMatch(/^root:/m);
      expect(r.stdout).toContain(`${user}:x:`);
    });

    it('refuses a target that reaches /etc through a symlink', async () => {
      const link = join(scratch, 'target-link');
      spawnSync('rm', ['-f', link]);
      symlinkSync('/etc', link);
      const r = await env.runAs(user, [`--image=id:${busybox}`, `--volume=${scratch}:${link}`, 'true']);
      expect(r.status).toBe(65);
      expect(readFileSync('/etc/passwd', 'utf8')).toMatch(/^root:/m);
    });

    it('creates a perNodeCache xfs volume owned by the user, within the site size limit, and frees it at exit', async () => {
      const cacheDir = join(env.dir, 'pernode');
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      env.writeConf(`perNodeCachePath=${cacheDir}\nperNodeCacheSizeLimit=1G\n`);
      try {
        const r = await env.runAs(user, [
          `--image=id:${busybox}`,
          '--volume=/tmp:/cache:perNodeCache=size=512M',
          'sh',
          '-c',
          'stat -f -c %T /cache && echo data > /cache/f && cat /cache/f',
        ]);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('xfs\ndata\n');
        expect(spawnSync('ls', ['-A', cacheDir], { encoding: 'utf8' }).stdout).toBe(''); // backing file unlinked
        const tooBig = await env.runAs(user, [
          `--image=id:${busybox}`,
          '--volume=/tmp:/cache:perNodeCache=size=2G',
          'true',
        ]);
        expect(tooBig.status).toBe(65);
        const badFs = await env.runAs(user, [
          `--image=id:${busybox}`,
          '--volume=/tmp:/cache:perNodeCache=size=512M,fs=ext4',
          'true',
        ]);
        expect(badFs.status).toBe(65);
        expect(await settled(() => env.loopDevices())).toEqual([]);
      } finally {
        env.writeConf();
      }
    });

    it('refuses a source the user cannot traverse', async () => {
      const secret = join(env.dir, 'root-only');
      mkdirSync(join(secret, 'inner'), { recursive: true, mode: 0o700 });
      chmodSync(secret, 0o700);
      const r = await env.runAs(user, [`--image=id:${busybox}`, `--volume=${secret}/inner:/data`, 'true']);
      expect(r.status).toBe(65);
    });
  });

  describe('escape suite (as the unprivileged user)', () => {
    it('refuses a udiRoot.conf not owned by root', async () => {
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
      chownSync(env.confPath, uid, 0);
      try {
        const r = await env.runAs(user, [`--image=id:${busybox}`, 'true']);
        expect(r.status).toBe(78);
        expect(r.stderr).toContain('owned by root');
      } finally {
        chownSync(env.confPath, 0, 0);
      }
    });

    it('refuses a group- or other-writable udiRoot.conf', async () => {
      chmodSync(env.confPath, 0o664);
      try {
        expect((await env.runAs(user, [`--image=id:${busybox}`, 'true'])).status).toBe(78);
      } finally {
        chmodSync(env.confPath, 0o644);
      }
    });

    it('refuses to work when the binary is not setuid root', async () => {
      const copy = join(env.dir, 'bin', 'shifter-nosuid');
      copyFileSync(env.shifter, copy);
      chmodSync(copy, 0o755);
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'true'], { program: copy });
      expect(r.status).toBe(77);
      expect(r.stderr).toContain('setuid');
    });

    it('ignores LD_PRELOAD and LD_LIBRARY_PATH injection into the setuid binary', async () => {
      const dir = join(env.dir, 'inject');
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      const marker = join(dir, 'marker');
      const c = join(dir, 'evil.c');
      writeFileSync(
        c,
        `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void){FILE*f=fopen("${marker}","a");if(f){fprintf(f,"euid=%d\\n",(int)geteuid());fclose(f);}}\n` +
          'int munge_encode(char **c, void *x, const void *b, int l){(void)c;(void)x;(void)b;(void)l;return 1;}\n',
      );
      execFileSync('gcc', ['-shared', '-fPIC', '-o', join(dir, 'evil.so'), c]);
      execFileSync('cp', [join(dir, 'evil.so'), join(dir, 'libmunge.so.2')]);
      chmodSync(dir, 0o777); // the constructor, if it ran as the user, could write its marker
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'cat', '/proc/self/environ'], {
        env: { LD_PRELOAD: join(dir, 'evil.so'), LD_LIBRARY_PATH: dir },
      });
      expect(r.status).toBe(0);
      expect(() => readFileSync(marker, 'utf8')).toThrow();
      const e = environOf(r.stdout);
      expect(e.LD_PRELOAD).toBeUndefined();
      expect(e.LD_LIBRARY_PATH).toBeUndefined();
    });

    it('gives a setuid-root binary inside the image no privilege', async () => {
      const r = await env.runAs(user, [`--image=id:${suidId}`, '/bin/probe']);
      const uid = execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim();
      expect(r.stdout).toBe(`euid=${uid} uid=${uid}\n`);
      expect(r.status).toBe(0);
    });

    it('refuses a private image outside the user ACL and lets the listed user use it', async () => {
      const denied = await env.runAs(user, [`--image=id:${privateId}`, 'true']);
      expect(denied.status).toBe(77);
      expect(denied.stderr).toContain('permission denied');
      const allowed = await env.runAs(user2, [`--image=id:${privateId}`, 'echo', 'ok']);
      expect(allowed.stdout).toBe('ok\n');
    });

    it('does not follow image /etc, /var or /opt symlinks out to the host', async () => {
      const rootfs = join(env.dir, 'evil-root');
      spawnSync('rm', ['-rf', rootfs]);
      execFileSync(
        'umoci',
        ['unpack', '--image', `${serviceValue('fixtures')}/busybox:latest`, join(env.dir, 'evil-bundle')],
        { stdio: 'pipe' },
      );
      execFileSync('mv', [join(env.dir, 'evil-bundle', 'rootfs'), rootfs]);
      for (const dir of ['etc', 'var', 'opt']) {
        spawnSync('rm', ['-rf', join(rootfs, dir)]);
        symlinkSync('/', join(rootfs, dir));
      }
      const evilId = 'ee11ee11ee11ee11ee11ee11ee11ee11';
      execFileSync('mksquashfs', [
        rootfs,
        join(env.imagePath, `${evilId}.squashfs`),
        '-noappend',
        '-quiet',
        '-no-progress',
        '-all-root',
      ]);
      writeFileSync(join(env.imagePath, `${evilId}.meta`), 'FORMAT: squashfs\n');
      const r = await env.runAs(user, [`--image=id:${evilId}`, 'sh', '-c', 'ls /var /opt; ls /etc | wc -l']);
      expect(r.stderr).toBe('');
      const listed = r.stdout.split(/\s+/);
      for (const hostEntry of ['root', 'usr', 'boot', 'home', 'lib']) expect(listed).not.toContain(hostEntry);
      expect(Number(r.stdout.trim().split('\n').pop())).toBeLessThan(15); // only the generated /etc
    });

    it('opens local: roots as the user: refused when not allowed or not reachable, usable otherwise', async () => {
      const rootfs = join(env.dir, 'local-root');
      spawnSync('rm', ['-rf', rootfs, join(env.dir, 'local-bundle')]);
      execFileSync(
        'umoci',
        ['unpack', '--image', `${serviceValue('fixtures')}/busybox:latest`, join(env.dir, 'local-bundle')],
        { stdio: 'pipe' },
      );
      execFileSync('mv', [join(env.dir, 'local-bundle', 'rootfs'), rootfs]);
      chmodSync(rootfs, 0o755);
      expect((await env.runAs(user, [`--image=local:${rootfs}`, 'echo', 'x'])).status).toBe(77); // allowLocalChroot=0
      env.writeConf('allowLocalChroot=1\n');
      try {
        const ok = await env.runAs(user, [`--image=local:${rootfs}`, 'cat', '/etc/os-release']);
        expect(ok.stderr).toBe('');
        expect(ok.stdout).toContain('busybox');
        const hidden = join(env.dir, 'root-only-dir');
        mkdirSync(join(hidden, 'inner'), { recursive: true });
        chmodSync(hidden, 0o700);
        const link = join(scratch, 'to-hidden');
        spawnSync('rm', ['-f', link]);
        symlinkSync(join(hidden, 'inner'), link);
        expect((await env.runAs(user, [`--image=local:${link}`, 'true'])).status).toBe(66);
      } finally {
        env.writeConf();
      }
    });

    it("gives the command the caller's umask while root's own files ignore it", async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, 'sh', '-c', 'umask; ls -ld /var/spool']);
      expect(r.stdout.split('\n')[0]).toBe('0022');
      const tight = await run('runuser', [
        '-u',
        user,
        '--',
        'sh',
        '-c',
        `umask 077; exec ${env.shifter} --image=id:${busybox} sh -c 'umask; ls -ld /var/spool'`,
      ]);
      expect(tight.stdout.split('\n')[0]).toBe('0077');
      expect(tight.stdout).toMatch(/^drwxr-xr-x/m);
    });

    it('refuses to run a container as root', async () => {
      const r = await run(env.shifter, [`--image=id:${busybox}`, 'true']);
      expect(r.status).toBe(67);
    });

    it('rejects image ids that are not hex (no path traversal into imagePath)', async () => {
      const r = await env.runAs(user, ['--image=id:../../etc/passwd', 'true']);
      expect(r.status).toBe(65);
    });

    it('keeps the host mount table unchanged while and after a container runs', async () => {
      const running = env.runAs(user, [`--image=id:${busybox}`, 'sh', '-c', 'sleep 1; grep -c . /proc/self/mountinfo']);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(env.mounts()).toEqual([]); // the container's mounts live only in its own namespace
      const r = await running;
      expect(Number(r.stdout.trim())).toBeGreaterThan(5); // …where they do exist
      expect(env.mounts()).toEqual([]);
    });
  });

  describe('command execution', () => {
    it('exits 127 when the command cannot be executed', async () => {
      const r = await env.runAs(user, [`--image=id:${busybox}`, '/no/such/program']);
      expect(r.status).toBe(127);
      expect(r.stderr).toContain('/no/such/program');
      const notInPath = await env.runAs(user, [`--image=id:${busybox}`, 'no-such-program']);
      expect(notInPath.status).toBe(127);
    });

    it("returns the command's own exit status", async () => {
      expect((await env.runAs(user, [`--image=id:${busybox}`, 'sh', '-c', 'exit 42'])).status).toBe(42);
    });

    it('refuses an unknown image with UDI_EX_NOINPUT', async () => {
      expect((await env.runAs(user, ['--image=id:deadbeef', 'true'])).status).toBe(66);
    });
  });

  describe('site configuration', () => {
    it('applies siteFs, modules (siteEnv, siteFs, copyPath, userhook), defaultModules, --module=none, conflicts', async () => {
      const site = join(env.dir, 'site');
      mkdirSync(join(site, 'fs'), { recursive: true });
      mkdirSync(join(site, 'mod'), { recursive: true });
      writeFileSync(join(site, 'fs', 'site.txt'), 'site-file');
      writeFileSync(join(site, 'mod', 'lib.txt'), 'module-file');
      writeFileSync(join(site, 'hook.sh'), 'echo hook-ran-as-$(cat /proc/self/status | grep ^Uid: | cut -f2) >&2\n');
      env.writeConf(
        `siteFs=${site}/fs:/site\n` +
          `module_mpi_siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/modules/mpi\nmodule_mpi_copyPath=${site}/mod\n` +
          `module_mpi_userhook=/opt/udiImage/modules/mpi/hook.sh\nmodule_mpi_conflict=other\nmodule_other_siteEnv=OTHER=1\n` +
          `module_gpu_siteFs=${site}/mod:/gpu\nmodule_off_enabled=0\ndefaultModules=mpi\n`,
      );
      writeFileSync(join(site, 'mod', 'hook.sh'), 'echo hook-ran >&2\n');
      try {
        const r = await env.runAs(user, [
          `--image=id:${busybox}`,
          'sh',
          '-c',
          'cat /site/site.txt /opt/udiImage/modules/mpi/lib.txt; echo; echo $LD_LIBRARY_PATH',
        ]);
        expect(r.status).toBe(0);
        expect(r.stdout).toBe('site-filemodule-file\n/opt/udiImage/modules/mpi\n');
        expect(r.stderr).toContain('hook-ran');
        const sig = await env.runAs(user, [
          `--image=id:${busybox}`,
          '--module=mpi,gpu',
          'cat',
          '/var/shifterConfig.json',
          '/gpu/lib.txt',
        ]);
        expect(sig.stdout).toContain('"modules":"mpi,gpu,"');
        expect(sig.stdout).toContain('module-file');
        const none = await env.runAs(user, [
          `--image=id:${busybox}`,
          '--module=none',
          'sh',
          '-c',
          'echo "[$LD_LIBRARY_PATH]"',
        ]);
        expect(none.stdout).toBe('[]\n');
        expect((await env.runAs(user, [`--image=id:${busybox}`, '--module=mpi,other', 'true'])).status).toBe(64);
        expect((await env.runAs(user, [`--image=id:${busybox}`, '--module=nosuch', 'true'])).status).toBe(64);
        const off = await env.runAs(user, [`--image=id:${busybox}`, '--module=off', 'true']);
        expect(off.status).toBe(0);
        expect(off.stderr).toContain('disabled');
      } finally {
        env.writeConf();
      }
    });

    it('runs the site pre/post mount hooks and module roothooks as root in the new root, and copies optUdiImage', async () => {
      const hooks = join(env.dir, 'hooks');
      mkdirSync(join(hooks, 'opt'), { recursive: true });
      writeFileSync(join(hooks, 'opt', 'site-tool'), '#!/bin/sh\necho tool\n');
      chmodSync(join(hooks, 'opt', 'site-tool'), 0o755);
      // Each hook records who ran it and where; the container shows the records (cwd = udiMount).
      writeFileSync(join(hooks, 'pre.sh'), 'echo "pre $(id -u) $PWD" > var/pre.txt\n');
      writeFileSync(join(hooks, 'post.sh'), 'echo "post $(id -u)" > var/post.txt\n');
      writeFileSync(join(hooks, 'root.sh'), 'echo "roothook $(id -u)" > var/roothook.txt\n');
      env.writeConf(
        `sitePreMountHook=${hooks}/pre.sh\nsitePostMountHook=${hooks}/post.sh\noptUdiImage=${hooks}/opt\n` +
          `module_rh_roothook=${hooks}/root.sh\n`,
      );
      try {
        const r = await env.runAs(user, [
          `--image=id:${busybox}`,
          '--module=rh',
          'sh',
          '-c',
          'cat /var/pre.txt /var/post.txt /var/roothook.txt; /opt/udiImage/site-tool',
        ]);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe(`pre 0 ${env.udiMount}\npost 0\nroothook 0\ntool\n`);
        const failing = join(hooks, 'fail.sh');
        writeFileSync(failing, 'exit 3\n');
        env.writeConf(`sitePreMountHook=${failing}\n`);
        const refused = await env.runAs(user, [`--image=id:${busybox}`, 'true']);
        expect(refused.status).toBe(1);
        expect(refused.stderr).toContain('hook');
      } finally {
        env.writeConf();
      }
    });

    it('copies etcPath files, filters /etc/group and takes the groups from etcPath when allowLibcPwdCalls=0', async () => {
      const etc = join(env.dir, 'site-etc');
      mkdirSync(etc, { recursive: true });
      const pw = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
      const gid = execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim();
      writeFileSync(join(etc, 'passwd'), `root:x:0:0:root:/root:/bin/sh\n${pw}\n`);
      writeFileSync(
        join(etc, 'group'),
        `root:x:0:\n${user}:x:${gid}:\nwheel:x:4242:${user},${user2}\nothers:x:4343:${user2}\n`,
      );
      writeFileSync(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\n');
      writeFileSync(join(etc, 'site-motd'), 'hello from the site\n');
      env.writeConf(`etcPath=${etc}\npopulateEtcDynamically=0\nallowLibcPwdCalls=0\n`);
      try {
        const r = await env.runAs(user, [
          `--image=id:${busybox}`,
          'sh',
          '-c',
          'cat /etc/group /etc/site-motd; grep ^Groups: /proc/self/status',
        ]);
        expect(r.stderr).toBe('');
        expect(r.stdout).toContain(`wheel:x:4242:${user}\n`);
        expect(r.stdout).toContain('others:x:4343:\n');
        expect(r.stdout).not.toContain(user2);
        expect(r.stdout).toContain('hello from the site');
        expect(r.stdout).toMatch(/^Groups:.*\b4242\b/m);
      } finally {
        env.writeConf();
      }
    });

    it('mounts the root read-only unless mountUdiRootWritable=1', async () => {
      expect((await env.runAs(user, [`--image=id:${busybox}`, 'sh', '-c', 'grep " / " /proc/mounts'])).stdout).toMatch(
        /\bro\b/,
      );
    });
  });

  describe('fixture images pulled from the test registry', () => {
    // Oracle: `umoci unpack` of the same fixture layout gives the expected tree and config.
    function unpackFixture(name: string): {
      rootfs: string;
      config: { process: { args: string[]; env: string[]; cwd: string } };
    } {
      const bundle = join(env.dir, `bundle-${name}`);
      spawnSync('rm', ['-rf', bundle]);
      execFileSync('umoci', ['unpack', '--image', `${serviceValue('fixtures')}/${name}:latest`, bundle], {
        stdio: 'pipe',
      });
      return { rootfs: join(bundle, 'rootfs'), config: JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) };
    }

    function listTree(root: string, paths: string[]): string[] {
      const out = spawnSync('find', paths, { cwd: root, encoding: 'utf8' }).stdout;
      return out.split('\n').filter(Boolean).sort();
    }

    it('runs the whiteout image: the container sees exactly the tree umoci unpacks', async () => {
      const id = await env.pullFromRegistry(serviceValue('registry'), 'whiteout:latest');
      const oracle = unpackFixture('whiteout');
      const paths = ['opq', 'data', 'deep'].filter(
        (p) => spawnSync('test', ['-e', join(oracle.rootfs, p)]).status === 0,
      );
      expect(paths.length).toBeGreaterThan(0);
      const r = await env.runAs(user, [`--image=id:${id}`, 'find', ...paths], { cwd: '/' });
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(listTree(oracle.rootfs, paths));
      expect(r.stdout).not.toContain('.wh.');
    });

    it('runs the weird image: entrypoint/cmd with quotes, a newline in ENV, WORKDIR, odd names like umoci', async () => {
      const id = await env.pullFromRegistry(serviceValue('registry'), 'weird:latest');
      const oracle = unpackFixture('weird');
      const expected = spawnSync(oracle.config.process.args[0]!, oracle.config.process.args.slice(1), {
        encoding: 'utf8',
      }).stdout;
      const entry = await env.runAs(user, [`--image=id:${id}`, '--entrypoint']);
      expect(entry.stderr).toBe('');
      expect(entry.stdout).toBe(expected);
      const environ = await env.runAs(user, [`--image=id:${id}`, '--clearenv', 'cat', '/proc/self/environ']);
      const got = environOf(environ.stdout);
      // umoci adds TERM=xterm for its runtime bundle; it is not part of the image config.
      for (const assignment of oracle.config.process.env.filter((a) => !a.startsWith('TERM='))) {
        const name = assignment.slice(0, assignment.indexOf('='));
        expect(got[name], name).toBe(assignment.slice(assignment.indexOf('=') + 1));
      }
      expect((await env.runAs(user, [`--image=id:${id}`, '--workdir', 'pwd'])).stdout).toBe(
        `${oracle.config.process.cwd}\n`,
      );
      const tree = await env.runAs(user, [`--image=id:${id}`, 'find', 'weird'], { cwd: '/' });
      expect(tree.stdout.split('\n').filter(Boolean).sort()).toEqual(listTree(oracle.rootfs, ['weird']));
    });

    it('runs the multi-arch image (amd64 manifest picked by the puller)', async () => {
      const id = await env.pullFromRegistry(serviceValue('registry'), 'multiarch:latest');
      const r = await env.runAs(user, [`--image=id:${id}`, 'uname', '-m']);
      expect(r.stdout).toBe('x86_64\n');
    });
  });

  describe('no leaks', () => {
    it('leaves no loop device, mount or process after 200 runs', async () => {
      for (let i = 0; i < 200; i++) {
        const r = await env.runAs(user, [`--image=id:${busybox}`, 'true']);
        expect(r.status).toBe(0);
      }
      expect(await settled(() => env.mounts())).toEqual([]);
      expect(await settled(() => env.loopDevices())).toEqual([]);
      const ps = spawnSync('pgrep', ['-f', env.shifter], { encoding: 'utf8' });
      expect(ps.stdout).toBe('');
    }, 300_000);

    it('runs 16 containers at once (loop devices claimed concurrently) and leaves nothing', async () => {
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          env.runAs(user, [`--image=id:${busybox}`, 'sh', '-c', `sleep 0.2; echo ${i}`]),
        ),
      );
      results.forEach((r, i) => {
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe(`${i}\n`);
      });
      expect(await settled(() => env.mounts())).toEqual([]);
      expect(await settled(() => env.loopDevices())).toEqual([]);
    }, 120_000);
  });

  describe('setupRoot / unsetupRoot', () => {
    it('builds a root in the global namespace, shifter reuses it, unsetupRoot removes everything', async () => {
      const uid = execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim();
      const gid = execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim();
      // Through the TypeScript wrapper, as a prolog script would.
      const setup = await runSetupRoot({
        programPath: env.setupRoot,
        imageId: busybox,
        user,
        uid: Number(uid),
        gid: Number(gid),
        hosts: { node1: 2, node2: 1 },
      });
      expect(setup.stderr).toBe('');
      expect(setup.exitCode).toBe(0);
      expect(env.mounts().length).toBeGreaterThan(3);
      expect(readFileSync(join(env.udiMount, 'var', 'shifterConfig.json'), 'utf8')).toBe(
        `{"identifier":"${busybox}","user":"${user}","volMap":"","modules":""}`,
      );
      expect(readFileSync(join(env.udiMount, 'var', 'hostsfile'), 'utf8')).toBe('node1\nnode1\nnode2\n');
      const reuse = await env.runAs(user, [`--image=id:${busybox}`, '--verbose', 'cat', '/var/hostsfile']);
      expect(reuse.stdout).toBe('node1\nnode1\nnode2\n');
      expect(reuse.stderr).toContain('reusing');
      // A different request (another volume) builds its own private root instead.
      const other = await env.runAs(user, [
        `--image=id:${busybox}`,
        `--volume=${scratch}:/data`,
        '--verbose',
        'cat',
        '/var/shifterConfig.json',
      ]);
      expect(other.stderr).not.toContain('reusing');
      expect(other.stdout).toContain(`"volMap":"${scratch}:/data"`);
      // Another user never gets this user's root.
      const otherUser = await env.runAs(user2, [
        `--image=id:${busybox}`,
        '--verbose',
        'cat',
        '/var/shifterConfig.json',
      ]);
      expect(otherUser.stdout).toContain(`"user":"${user2}"`);
      const teardown = await runUnsetupRoot({ programPath: env.unsetupRoot });
      expect(teardown.exitCode).toBe(0);
      expect(await settled(() => env.mounts())).toEqual([]);
      expect(await settled(() => env.loopDevices())).toEqual([]);
    }, 60_000);

    it('refuses to run for a non-root caller', async () => {
      const r = await env.runAs(user, ['-u', user, '-U', '1', '-G', '1', 'id', busybox], { program: env.setupRoot });
      expect(r.status).toBe(77);
    });
  });
});
