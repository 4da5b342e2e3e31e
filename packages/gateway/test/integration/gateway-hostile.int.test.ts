/**
 * The gateway attacked by an ordinary user (shiftertest, uid 2001) while another ordinary user (shiftertest2, uid
 * 2002) keeps a private image on it. Real gateway process, real munge credentials, real users reading their own
 * files through setpriv, a small tmpfs as scratch space.
 *
 * After every attack: the gateway still answers the victim's lookup of their private image, the attacker still
 * cannot see it, the scratch directory holds nothing, the image directory holds only finished images, and the
 * gateway process is the one started at the beginning (it did not crash or restart).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  pullUntilDone,
  startGatewayProcess,
  tempDir,
  type Answer,
  type GatewayProcess,
} from './gateway-process.js';

const ready = haveServices('registry', 'munge') && haveRoot();
const ATTACKER = { name: process.env.SHIFTER_TEST_USER ?? 'shiftertest', uid: 2001 };
const VICTIM = { name: process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2', uid: 2002 };
const SYSTEM = 'cluster';
const FINAL = /^[0-9a-f]{64}\.(squashfs|meta)$/;
const IN_FLIGHT = ['INIT', 'PENDING', 'PULLING', 'EXAMINATION', 'CONVERSION', 'TRANSFER', 'HASHING'];

const uidOf = (name: string): number => Number(execFileSync('id', ['-u', name]).toString().trim());
const as = (user: { name: string }) => () => mungeCredential({ user: user.name });

/** Re-POST an import (as clients poll) until it leaves the in-flight states. */
async function importUntilDone(
  url: string,
  tag: string,
  credential: () => Promise<string>,
  body: Record<string, unknown>,
  timeoutMs = 60_000,
): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await call(url, 'POST', `/api/doimport/${SYSTEM}/custom/${encodeURIComponent(tag)}/`, {
      credential: await credential(),
      body,
    });
    if (answer.status !== 200 || !IN_FLIGHT.includes(answer.body.status)) return answer;
    if (Date.now() > deadline) throw new Error(`import of ${tag} still ${answer.body.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A squashfs image owned by `owner`, mode 0600. */
function makeSquashfs(path: string, owner: number, marker: string): void {
  const tree = `${path}.tree`;
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, 'secret.txt'), marker);
  execFileSync('mksquashfs', [tree, path, '-noappend', '-quiet', '-all-root', '-comp', 'gzip']);
  rmSync(tree, { recursive: true, force: true });
  chownSync(path, owner, owner);
  chmodSync(path, 0o600);
}

/** Pids of processes whose command line contains `needle`. */
function pidsWith(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(needle)) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids.filter((pid) => pid !== process.pid);
}

describe.skipIf(!ready)('hostile user against the gateway (imports, malformed requests, registries, audit)', () => {
  let dir: string;
  let scratch: string;
  let imageDir: string;
  let attackerDir: string;
  let victimDir: string;
  let gateway: GatewayProcess;
  let pid: number;
  const victimTag = 'victim/private:1';
  const victimSecret = 'victim-only-marker';

  beforeAll(async () => {
    expect(uidOf(ATTACKER.name)).toBe(ATTACKER.uid);
    expect(uidOf(VICTIM.name)).toBe(VICTIM.uid);
    dir = tempDir('shifter-hostile-');
    chmodSync(dir, 0o755);
    scratch = join(dir, 'expand');
    imageDir = join(dir, 'images');
    attackerDir = join(dir, 'attacker');
    victimDir = join(dir, 'victim');
    for (const path of [scratch, imageDir]) mkdirSync(path);
    for (const [path, user] of [
      [attackerDir, ATTACKER],
      [victimDir, VICTIM],
    ] as const) {
      mkdirSync(path);
      chownSync(path, user.uid, user.uid);
      chmodSync(path, 0o700);
    }
    // 16 MiB of scratch space: an import larger than that fills it.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'hd-scratch', scratch]);
    const config = {
      gateway: { host: '127.0.0.1', port: await freePort() },
      storage: { cacheDir: join(dir, 'cache'), expandDir: scratch },
      systems: { [SYSTEM]: { transfer: { kind: 'local', imageDir }, admins: ['root'] } },
      // The harness registry is the site's one configured location; nothing else may be pulled from.
      registries: { harness: { url: `http://${serviceValue('registry')}` } },
      metadata: { kind: 'sqlite', path: join(dir, 'gateway.db') },
      queue: { kind: 'in-process', concurrency: 2 },
      importUsers: 'all',
      limits: { maxImportBytes: 24 * 1024 * 1024, importTimeoutMs: 20_000 },
      jobs: { maxAttempts: 2 },
      logLevel: 'info',
    };
    gateway = await startGatewayProcess(config, { dir, name: 'hostile' });
    pid = gateway.child.pid!;
    const image = join(victimDir, 'private.sqfs');
    makeSquashfs(image, VICTIM.uid, victimSecret);
    const imported = await importUntilDone(gateway.url, victimTag, as(VICTIM), {
      filepath: image,
      allowed_uids: String(VICTIM.uid),
    });
    expect(imported.body, gateway.output().slice(-3000)).toMatchObject({ status: 'READY' });
  });

  afterAll(async () => {
    await gateway?.stop();
    spawnSync('umount', [scratch]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** What must hold after every attack. */
  async function stillSafe(): Promise<void> {
    const victim = await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/custom/${encodeURIComponent(victimTag)}/`, {
      credential: await as(VICTIM)(),
    });
    expect(victim.status).toBe(200);
    expect(victim.body.userACL).toEqual([VICTIM.uid]);
    const attacker = await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/custom/${encodeURIComponent(victimTag)}/`, {
      credential: await as(ATTACKER)(),
    });
    expect(attacker.status).toBe(404);
    const listed = await call(gateway.url, 'GET', `/api/list/${SYSTEM}/`, { credential: await as(ATTACKER)() });
    expect(JSON.stringify(listed.body)).not.toContain('victim/private');
    expect(readdirSync(scratch)).toEqual([]);
    for (const file of readdirSync(imageDir)) expect(file).toMatch(FINAL);
    // The victim's image file stays private on disk.
    const id = victim.body.id as string;
    expect(readFileSync(join(imageDir, `${id}.meta`), 'utf8')).toContain(`USERACL: ${VICTIM.uid}`);
    expect(gateway.child.exitCode).toBeNull();
    expect(gateway.child.pid).toBe(pid);
  }

  it('imports of /dev/zero fail at once with SHIFTER_IMPORT_INVALID and copy nothing', async () => {
    const answer = await importUntilDone(gateway.url, 'evil/zero:1', as(ATTACKER), { filepath: '/dev/zero' });
    expect(answer.body).toMatchObject({ status: 'FAILURE', code: 'SHIFTER_IMPORT_INVALID' });
    expect(answer.body.status_message).toContain('a character device');
    await stillSafe();
  });

  it("imports of FIFOs never block a worker: both fail, and the victim's next import still runs", async () => {
    const fifos = [join(attackerDir, 'fifo1'), join(attackerDir, 'fifo2')];
    for (const fifo of fifos) execFileSync('runuser', ['-u', ATTACKER.name, '--', 'mkfifo', fifo]);
    const answers = await Promise.all(
      fifos.map((fifo, index) => importUntilDone(gateway.url, `evil/fifo:${index}`, as(ATTACKER), { filepath: fifo })),
    );
    for (const answer of answers) {
      expect(answer.body).toMatchObject({ status: 'FAILURE', code: 'SHIFTER_IMPORT_INVALID' });
      expect(answer.body.status_message).toContain('a FIFO');
    }
    const image = join(victimDir, 'second.sqfs');
    makeSquashfs(image, VICTIM.uid, 'second');
    const next = await importUntilDone(gateway.url, 'victim/second:1', as(VICTIM), { filepath: image });
    expect(next.body).toMatchObject({ status: 'READY' });
    await stillSafe();
  });

  it('an import larger than the scratch file system fails with SHIFTER_NO_SPACE and leaves no partial file', async () => {
    const big = join(attackerDir, 'fill.sqfs');
    writeFileSync(big, '');
    truncateSync(big, 20 * 1024 * 1024); // sparse: 20 MiB read, 16 MiB of scratch
    chownSync(big, ATTACKER.uid, ATTACKER.uid);
    const answer = await importUntilDone(gateway.url, 'evil/fill:1', as(ATTACKER), { filepath: big });
    expect(answer.body).toMatchObject({ status: 'FAILURE', code: 'SHIFTER_NO_SPACE' });
    await stillSafe();
  });

  it('an import larger than limits.maxImportBytes is refused with SHIFTER_SIZE_LIMIT before copying', async () => {
    const huge = join(attackerDir, 'huge.sqfs');
    writeFileSync(huge, '');
    truncateSync(huge, 64 * 1024 ** 3); // sparse 64 GiB
    chownSync(huge, ATTACKER.uid, ATTACKER.uid);
    const answer = await importUntilDone(gateway.url, 'evil/huge:1', as(ATTACKER), { filepath: huge });
    expect(answer.body).toMatchObject({ status: 'FAILURE', code: 'SHIFTER_SIZE_LIMIT' });
    await stillSafe();
  });

  it("an import of the victim's private file is read as the attacker and refused by the kernel", async () => {
    const answer = await importUntilDone(gateway.url, 'evil/steal:1', as(ATTACKER), {
      filepath: join(victimDir, 'private.sqfs'),
    });
    expect(answer.body).toMatchObject({ status: 'FAILURE', code: 'SHIFTER_IMPORT_INVALID' });
    expect(answer.body.status_message).toContain('EACCES');
    await stillSafe();
  });

  it('malformed requests each get a catalogue code, and the gateway keeps serving', async () => {
    const port = Number(new URL(gateway.url).port);
    const raw = (bytes: string | Buffer): Promise<{ status: number; code: unknown }> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port });
        let data = '';
        socket.on('data', (chunk) => (data += chunk.toString()));
        socket.on('error', reject);
        socket.on('close', () => {
          const [head = '', body = ''] = data.split('\r\n\r\n');
          let code: unknown;
          try {
            code = (JSON.parse(body) as { code?: unknown }).code;
          } catch {
            code = undefined;
          }
          resolve({ status: Number(head.split(' ')[1]), code });
        });
        // No half-close: Node drops a request whose client ended its side before the answer. Each request here is
        // either refused by the parser (the server closes) or asks for Connection: close.
        socket.write(bytes);
      });
    const credential = await as(ATTACKER)();
    const cases: [string, string | Buffer, number, string][] = [
      [
        'bad percent-encoding',
        'GET /api/lookup/cluster/docker/%E0%A4%A/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        400,
        'SHIFTER_REQUEST_MALFORMED',
      ],
      [
        'raw NUL in the path',
        Buffer.from('GET /api/lookup/cluster/docker/a\0/ HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'),
        400,
        'SHIFTER_REQUEST_MALFORMED',
      ],
      [
        'Content-Length with Transfer-Encoding',
        'POST /api/pull/cluster/docker/a/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        400,
        'SHIFTER_REQUEST_MALFORMED',
      ],
      [
        'headers over 80 KiB',
        `GET /api/status HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(100 * 1024)}\r\n\r\n`,
        431,
        'SHIFTER_HEADERS_TOO_LARGE',
      ],
      [
        "a 20 KiB forged credential (over Node's default 16 KiB, under our limit)",
        `GET /api/list/cluster/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nauthentication: MUNGE:${'A'.repeat(20 * 1024)}:\r\n\r\n`,
        401,
        'SHIFTER_AUTH_INVALID',
      ],
      [
        'DELETE on lookup',
        `DELETE /api/lookup/cluster/custom/x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nauthentication: ${credential}\r\n\r\n`,
        405,
        'SHIFTER_METHOD_NOT_ALLOWED',
      ],
      [
        'GET on pull',
        'GET /api/pull/cluster/docker/x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        405,
        'SHIFTER_METHOD_NOT_ALLOWED',
      ],
      [
        'an unknown path',
        'GET /api/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        404,
        'SHIFTER_ROUTE_NOT_FOUND',
      ],
    ];
    for (const [what, bytes, status, code] of cases) {
      const answer = await raw(bytes);
      expect(answer, what).toEqual({ status, code });
    }
    await stillSafe();
  });

  it('pulls from a registry the site did not configure are refused with SHIFTER_REGISTRY_NOT_ALLOWED', async () => {
    // The attacker's own registry on the gateway host (a loopback port of our range): never contacted.
    const answer = await call(
      gateway.url,
      'POST',
      `/api/pull/${SYSTEM}/docker/${encodeURIComponent('127.0.0.1:7601/evil/image:1')}/`,
      { credential: await as(ATTACKER)() },
    );
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject({ code: 'SHIFTER_REGISTRY_NOT_ALLOWED' });
    // The configured location still works.
    const allowed = await pullUntilDone(
      gateway.url,
      SYSTEM,
      `${serviceValue('registry')}/test/busybox:latest`,
      as(VICTIM),
      120_000,
    );
    expect(allowed.body).toMatchObject({ status: 'READY' });
    await stillSafe();
  });

  it("logs every import, pull and expiry as an audit record naming the caller's uid", async () => {
    const expired = await call(
      gateway.url,
      'GET',
      `/api/expire/${SYSTEM}/custom/${encodeURIComponent('victim/second:1')}/`,
      { credential: await mungeCredential() },
    );
    expect(expired.status).toBe(200);
    const deadline = Date.now() + 30_000;
    const records = (): Record<string, unknown>[] =>
      gateway
        .output()
        .split('\n')
        .filter((line) => line.includes('"audit":true'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    while (!records().some((r) => r.action === 'expire.done') && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    const audit = records();
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'import.request',
        uid: VICTIM.uid,
        tag: victimTag,
        userAcl: [VICTIM.uid],
        private: true,
      }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ action: 'import.request', uid: ATTACKER.uid, filepath: '/dev/zero' }),
    );
    expect(audit).toContainEqual(expect.objectContaining({ action: 'import.failed', code: 'SHIFTER_IMPORT_INVALID' }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'pull.request', uid: VICTIM.uid }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'expire.request', uid: 0, tag: 'victim/second:1' }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'expire.done' }));
    await stillSafe();
  });
});

describe.skipIf(!ready)('a worker killed mid-import, on every attempt', () => {
  let dir: string;
  let gateway: GatewayProcess | undefined;

  afterAll(async () => {
    await gateway?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('retries a bounded number of times, then fails with SHIFTER_JOB_WORKER_LOST and leaves no partial file', async () => {
    dir = tempDir('shifter-hostile-kill-');
    chmodSync(dir, 0o755);
    const scratch = join(dir, 'expand');
    const imageDir = join(dir, 'images');
    const attackerDir = join(dir, 'attacker');
    mkdirSync(scratch);
    mkdirSync(imageDir);
    mkdirSync(attackerDir);
    chownSync(attackerDir, ATTACKER.uid, ATTACKER.uid);
    const file = join(attackerDir, `slow-${process.pid}.sqfs`);
    writeFileSync(file, '');
    truncateSync(file, 1024 ** 3); // sparse: the copy is stopped long before its end
    chownSync(file, ATTACKER.uid, ATTACKER.uid);
    const config = {
      gateway: { host: '127.0.0.1', port: await freePort() },
      storage: { cacheDir: join(dir, 'cache'), expandDir: scratch },
      systems: { [SYSTEM]: { transfer: { kind: 'local', imageDir }, admins: ['root'] } },
      metadata: { kind: 'sqlite', path: join(dir, 'gateway.db') },
      queue: { kind: 'in-process', concurrency: 1 },
      importUsers: 'all',
      jobs: { leaseMs: 2000, heartbeatMs: 500, maxAttempts: 2 },
      logLevel: 'info',
    };
    const maxAttempts = 2;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      gateway = await startGatewayProcess(config, { dir, name: 'kill' });
      if (attempt === 1) {
        const first = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/evil%2Fslow/`, {
          credential: await as(ATTACKER)(),
          body: { filepath: file },
        });
        expect(first.status).toBe(200);
      }
      // The reader process of this attempt (it runs as the attacker): freeze it mid-copy, then kill the worker.
      let readers: number[] = [];
      const deadline = Date.now() + 30_000;
      while (readers.length === 0 && Date.now() < deadline) {
        readers = pidsWith(file);
        if (readers.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(
        readers.length,
        `attempt ${attempt}: no reader process started\n${gateway.output().slice(-3000)}`,
      ).toBeGreaterThan(0);
      for (const reader of readers) process.kill(reader, 'SIGSTOP');
      await gateway.kill();
      for (const reader of readers) {
        try {
          process.kill(reader, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    gateway = await startGatewayProcess(config, { dir, name: 'kill' });
    // The lease of the last attempt runs out; the next claim finds the job out of attempts.
    let answer: Answer;
    const deadline = Date.now() + 60_000;
    for (;;) {
      answer = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/evil%2Fslow/`, {
        credential: await as(ATTACKER)(),
        body: { filepath: file },
      });
      if (!IN_FLIGHT.includes(answer.body.status) || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(answer.body, gateway.output().slice(-3000)).toMatchObject({
      status: 'FAILURE',
      code: 'SHIFTER_JOB_WORKER_LOST',
    });
    expect(readdirSync(scratch)).toEqual([]);
    expect(readdirSync(imageDir)).toEqual([]);
    expect(pidsWith(file)).toEqual([]);
    const status = await call(gateway.url, 'GET', '/api/status');
    expect(status.status).toBe(200);
    expect(existsSync(file)).toBe(true);
  });
});
