import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMungeVerifier, mungeDecode, mungeEncode, type MungeVerifier } from '@shifter/core';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';

const run = promisify(execFile);

async function mungeCli(args: string[], input: string, user?: string): Promise<string> {
  const command = user ? 'runuser' : 'munge';
  const argv = user ? ['-u', user, '--', 'munge', ...args] : args;
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`munge exited ${code}: ${err}`))));
    // `munge -n` reads no input and may exit before it is written: its exit status decides, not the EPIPE.
    child.stdin.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') reject(error);
    });
    child.stdin.end(input);
  });
}

describe.skipIf(!haveServices('munge'))('munge credentials against the real munged', () => {
  let socketPath: string;
  let verifier: MungeVerifier;
  beforeAll(() => {
    socketPath = serviceValue('munge');
    verifier = createMungeVerifier({ socketPath });
  });

  it('verifies a good credential made by the munge CLI, with uid, gid, times and payload', async () => {
    const payload = JSON.stringify({ authorized_locations: { default: 'alice:s3cret', private: 'bob:x:y' } });
    const credential = await mungeCli(['-S', socketPath], payload);
    const before = Math.floor(Date.now() / 1000) - 1;
    const identity = await verifier.verify(credential);
    expect(identity.uid).toBe(process.getuid!());
    expect(identity.gid).toBe(process.getgid!());
    expect(identity.payload).toBe(payload);
    expect({ ...identity.authorizedLocations }).toEqual({ default: 'alice:s3cret', private: 'bob:x:y' });
    expect(identity.encodeTime).toBeGreaterThanOrEqual(before);
    expect(identity.decodeTime).toBeGreaterThanOrEqual(identity.encodeTime);
  });

  it.skipIf(!haveRoot() || !haveServices('user'))('reports the encoding user of another uid', async () => {
    const user = serviceValue('user');
    const { stdout } = await run('id', ['-u', user]);
    const credential = await mungeCli(['-S', socketPath, '-n'], '', user);
    const identity = await verifier.verify(credential);
    expect(identity.uid).toBe(Number(stdout.trim()));
    expect(identity.payload).toBe('');
    expect(identity.authorizedLocations).toBeNull();
  });

  it('round-trips mungeEncode and mungeDecode in-process', async () => {
    const credential = await mungeEncode('héllo', { socketPath });
    expect(credential).toMatch(/^MUNGE:.+:$/);
    const decoded = await mungeDecode(credential, { socketPath });
    expect(decoded.payload).toBe('héllo');
  });

  it('refuses a replayed credential with SHIFTER_AUTH_REPLAYED', async () => {
    const credential = await mungeEncode('', { socketPath });
    await verifier.verify(credential);
    await expect(verifier.verify(credential)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_REPLAYED', httpStatus: 401 });
  });

  it('refuses an expired credential with SHIFTER_AUTH_EXPIRED', async () => {
    const fromCli = await mungeCli(['-S', socketPath, '-t', '1', '-n'], '');
    const inProcess = await mungeEncode('x', { socketPath, ttl: 1 });
    await sleep(2500);
    await expect(verifier.verify(fromCli)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_EXPIRED' });
    await expect(verifier.verify(inProcess)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_EXPIRED' });
  });

  it('refuses forged and malformed credentials with SHIFTER_AUTH_INVALID', async () => {
    const credential = await mungeEncode('{"authorized_locations":{"default":"a:b"}}', { socketPath });
    const middle = Math.floor(credential.length / 2);
    const flipped = credential[middle] === 'A' ? 'B' : 'A';
    const forged = credential.slice(0, middle) + flipped + credential.slice(middle + 1);
    await expect(verifier.verify(forged)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_INVALID' });
    for (const bad of [
      'MUNGE:',
      'MUNGE:AAAA:',
      'not a credential',
      'MUNGE:' + 'A'.repeat(5000) + ':',
      'x'.repeat(70_000),
    ]) {
      await expect(verifier.verify(bad)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_INVALID' });
    }
  });

  it('asks for credentials when the header is empty', async () => {
    await expect(verifier.verify('')).rejects.toMatchObject({ code: 'SHIFTER_AUTH_REQUIRED' });
    await expect(verifier.verify('   ')).rejects.toMatchObject({ code: 'SHIFTER_AUTH_REQUIRED' });
  });

  it('reports SHIFTER_AUTH_UNAVAILABLE (retryable) when munged is not at the socket', async () => {
    const credential = await mungeEncode('', { socketPath });
    const wrong = createMungeVerifier({ socketPath: '/run/munge/no-such.socket' });
    await expect(wrong.verify(credential)).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_UNAVAILABLE',
      retryable: true,
      httpStatus: 503,
    });
  });

  it('keeps many decodes in flight at once without errors', async () => {
    const credentials = await Promise.all(
      Array.from({ length: 200 }, (_, i) => mungeEncode(String(i), { socketPath })),
    );
    const decoded = await Promise.all(credentials.map((c) => verifier.verify(c)));
    expect(decoded.map((d) => d.payload)).toEqual(credentials.map((_, i) => String(i)));
  });
});

// A second munged with its own key models a second system: its credentials must not verify against the first.
describe.skipIf(!haveServices('munge') || !haveRoot())('munge keys are per system', () => {
  let dir: string;
  let daemon: ChildProcess | undefined;
  let otherSocket: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shifter-munge-'));
    chmodSync(dir, 0o755);
    const { stdout } = await run('id', ['-u', 'munge']);
    const { stdout: gid } = await run('id', ['-g', 'munge']);
    chownSync(dir, Number(stdout), Number(gid));
    await run('runuser', ['-u', 'munge', '--', 'mungekey', '--create', `--keyfile=${join(dir, 'key')}`]);
    otherSocket = join(dir, 'socket');
    daemon = spawn(
      'runuser',
      [
        '-u',
        'munge',
        '--',
        'munged',
        '-F',
        `--socket=${otherSocket}`,
        `--key-file=${join(dir, 'key')}`,
        `--pid-file=${join(dir, 'pid')}`,
        `--log-file=${join(dir, 'log')}`,
        `--seed-file=${join(dir, 'seed')}`,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (!existsSync(otherSocket)) {
      if (Date.now() > deadline) throw new Error('second munged did not start');
      await sleep(50);
    }
  });
  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((r) => daemon!.once('exit', r));
      daemon.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a credential made with another system key', async () => {
    const foreign = await mungeEncode('', { socketPath: otherSocket });
    expect(
      (await mungeDecode(await mungeEncode('', { socketPath: otherSocket }), { socketPath: otherSocket })).uid,
    ).toBe(0);
    await expect(createMungeVerifier({ socketPath: serviceValue('munge') }).verify(foreign)).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_INVALID',
    });
  });
});
