import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ShifterError } from '@shifter/core';
import { buildSetupRootArgs, buildShifterArgs, runSetupRoot, runShifter, runUnsetupRoot } from './index.js';

describe('buildShifterArgs', () => {
  it('maps every option to one shifter flag, command last after --', () => {
    expect(
      buildShifterArgs({
        image: 'docker:ubuntu:22.04',
        command: ['echo', '--not-an-option'],
        volumes: [
          { from: '/scratch/a', to: '/data', readOnly: true },
          '/b:/c',
          { from: '/x', to: '/cache', perNodeCacheBytes: 1024 },
        ],
        entrypoint: true,
        workdir: '/work',
        env: { A: '1', B: 'two words' },
        envFiles: ['/home/u/env'],
        clearEnv: true,
        modules: ['mpich', 'gpu'],
        verbose: true,
      }),
    ).toEqual([
      '--image=docker:ubuntu:22.04',
      '--volume=/scratch/a:/data:ro',
      '--volume=/b:/c',
      '--volume=/x:/cache:perNodeCache=size=1024',
      '--entrypoint',
      '--workdir=/work',
      '--env-file=/home/u/env',
      '--env=A=1',
      '--env=B=two words',
      '--clearenv',
      '--module=mpich,gpu',
      '--verbose',
      '--',
      'echo',
      '--not-an-option',
    ]);
  });

  it('supports --entrypoint=X, --workdir without value, --module=none, and no command', () => {
    expect(buildShifterArgs({ image: 'id:abc', entrypoint: 'python3', workdir: true, modules: 'none' })).toEqual([
      '--image=id:abc',
      '--entrypoint=python3',
      '--workdir',
      '--module=none',
    ]);
  });

  it.each([
    [{ image: '' }, 'image'],
    [{ image: 'id:a b' }, 'image'],
    [{ image: 'id:a', env: { '': 'x' } }, 'env'],
    [{ image: 'id:a', env: { 'A=B': 'x' } }, 'env'],
    [{ image: 'id:a', env: { A: '' } }, 'env'],
    [{ image: 'id:a', volumes: [{ from: 'relative', to: '/x' }] }, 'volumes'],
    [{ image: 'id:a', volumes: [{ from: '/a b', to: '/x' }] }, 'volumes'],
    [{ image: 'id:a', volumes: ['/a:/b;/c:/d'] }, 'volumes'],
    [{ image: 'id:a', volumes: [{ from: '/a', to: '/b', perNodeCacheBytes: -1 }] }, 'volumes'],
    [{ image: 'id:a', modules: [] }, 'modules'],
    [{ image: 'id:a', modules: ['a,b'] }, 'modules'],
    [{ image: 'id:a', workdir: 'rel' }, 'workdir'],
    [{ image: 'id:a', entrypoint: '' }, 'entrypoint'],
  ])('refuses %j with SHIFTER_USAGE_INVALID_ARGUMENT', (options, field) => {
    let caught: unknown;
    try {
      buildShifterArgs(options);
    } catch (error) {
      caught = error;
    }
    expect(ShifterError.isInstance(caught)).toBe(true);
    expect((caught as ShifterError).code).toBe('SHIFTER_USAGE_INVALID_ARGUMENT');
    expect((caught as ShifterError).details.field).toBe(field);
  });
});

describe('runShifter', () => {
  // A stand-in for the setuid binary (unit test: the real one is exercised by the integration tests).
  const dir = mkdtempSync(join(tmpdir(), 'udiroot-unit-'));
  const fake = join(dir, 'shifter');
  writeFileSync(fake, '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\necho "cwd=$(pwd)" >&2\nexit 7\n');
  chmodSync(fake, 0o755);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('spawns the program with the built argv and reports status and output', async () => {
    const result = await runShifter({ shifterPath: fake, image: 'id:abc', command: ['true'], cwd: dir });
    expect(result.exitCode).toBe(7);
    expect(result.signal).toBeNull();
    expect(result.stdout.trim().split('\n')).toEqual(['--image=id:abc', '--', 'true']);
    expect(result.stderr).toContain(`cwd=${dir}`);
    expect(result.args).toEqual(['--image=id:abc', '--', 'true']);
  });

  it('rejects with SHIFTER_TOOL_NOT_FOUND when the program does not exist', async () => {
    await expect(runShifter({ shifterPath: join(dir, 'missing'), image: 'id:abc' })).rejects.toMatchObject({
      code: 'SHIFTER_TOOL_NOT_FOUND',
    });
  });

  it('rejects invalid options before spawning', async () => {
    await expect(runShifter({ shifterPath: fake, image: '' })).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
  });

  it('kills the process when the abort signal fires', async () => {
    const slow = join(dir, 'slow');
    writeFileSync(slow, '#!/bin/sh\nexec sleep 30\n');
    chmodSync(slow, 0o755);
    const controller = new AbortController();
    const pending = runShifter({ shifterPath: slow, image: 'id:abc', signal: controller.signal });
    // runShifter spawns synchronously: the process is running now.
    controller.abort();
    const result = await pending;
    expect(result.signal).toBe('SIGTERM');
  });
});

describe('buildSetupRootArgs / runSetupRoot / runUnsetupRoot', () => {
  it("builds the prolog command line in setupRoot's option order", () => {
    expect(
      buildSetupRootArgs({
        imageId: 'ABCDEF01',
        user: 'alice',
        uid: 1000,
        gid: 100,
        volumes: [{ from: '/scratch', to: '/data', readOnly: true }, '/a:/b'],
        modules: ['mpich'],
        hosts: { node1: 2, node2: 1 },
        verbose: true,
      }),
    ).toEqual([
      '-V',
      '-v',
      '/scratch:/data:ro;/a:/b',
      '-u',
      'alice',
      '-U',
      '1000',
      '-G',
      '100',
      '-N',
      'node1/2 node2/1',
      '-m',
      'mpich',
      'id',
      'abcdef01',
    ]);
    expect(buildSetupRootArgs({ imageId: 'ab', user: 'bob', uid: 5, gid: 6 })).toEqual([
      '-u',
      'bob',
      '-U',
      '5',
      '-G',
      '6',
      'id',
      'ab',
    ]);
    expect(buildSetupRootArgs({ imageId: 'ab', user: 'bob', uid: 5, gid: 6, job: 42, verbose: true })).toEqual([
      '-V',
      '-j',
      '42',
      '-u',
      'bob',
      '-U',
      '5',
      '-G',
      '6',
      'id',
      'ab',
    ]);
  });

  it('builds the CCM form: a local directory instead of an image', () => {
    expect(buildSetupRootArgs({ localRoot: '/', user: 'bob', uid: 5, gid: 6 })).toEqual([
      '-u',
      'bob',
      '-U',
      '5',
      '-G',
      '6',
      'local',
      '/',
    ]);
    expect(buildSetupRootArgs({ localRoot: '/srv/ccm-root', user: 'bob', uid: 5, gid: 6, modules: 'none' })).toEqual([
      '-u',
      'bob',
      '-U',
      '5',
      '-G',
      '6',
      '-m',
      'none',
      'local',
      '/srv/ccm-root',
    ]);
  });

  it.each([
    [{ imageId: 'not-hex', user: 'a', uid: 1, gid: 1 }, 'imageId'],
    [{ user: 'a', uid: 1, gid: 1 }, 'imageId'],
    [{ imageId: 'ab', localRoot: '/', user: 'a', uid: 1, gid: 1 }, 'imageId'],
    [{ localRoot: 'relative/dir', user: 'a', uid: 1, gid: 1 }, 'localRoot'],
    [{ localRoot: '/srv/../etc', user: 'a', uid: 1, gid: 1 }, 'localRoot'],
    [{ imageId: 'ab', user: '', uid: 1, gid: 1 }, 'user'],
    [{ imageId: 'ab', user: 'a', uid: 0, gid: 1 }, 'uid'],
    [{ imageId: 'ab', user: 'a', uid: 1, gid: -1 }, 'gid'],
    [{ imageId: 'ab', user: 'a', uid: 1, gid: 1, hosts: { 'bad host': 1 } }, 'hosts'],
    [{ imageId: 'ab', user: 'a', uid: 1, gid: 1, hosts: { n: 0 } }, 'hosts'],
    [{ imageId: 'ab', user: 'a', uid: 1, gid: 1, job: 0 }, 'job'],
    [{ imageId: 'ab', user: 'a', uid: 1, gid: 1, job: 4294967296 }, 'job'],
    [{ imageId: 'ab', user: 'a', uid: 1, gid: 1, job: 1.5 }, 'job'],
  ])('refuses %j', (options, field) => {
    expect(() => buildSetupRootArgs(options)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT', details: { field } }),
    );
  });

  it('spawns the programs with the built argv', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'udiroot-unit-setup-'));
    try {
      const fake = join(dir, 'fake');
      writeFileSync(fake, '#!/bin/sh\necho "$@"\n');
      chmodSync(fake, 0o755);
      const setup = await runSetupRoot({ programPath: fake, imageId: 'ab', user: 'a', uid: 1, gid: 2 });
      expect(setup.exitCode).toBe(0);
      expect(setup.stdout).toBe('-u a -U 1 -G 2 id ab\n');
      const teardown = await runUnsetupRoot({ programPath: fake, verbose: true });
      expect(teardown.stdout).toBe('-V\n');
      expect((await runUnsetupRoot({ programPath: fake, job: 7 })).stdout).toBe('-j 7\n');
      await expect(runUnsetupRoot({ programPath: fake, job: -1 })).rejects.toMatchObject({
        code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
      });
      await expect(runSetupRoot({ programPath: fake, imageId: 'zz', user: 'a', uid: 1, gid: 2 })).rejects.toMatchObject(
        {
          code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
