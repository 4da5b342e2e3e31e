/**
 * Slow clients from one address cannot starve the others: thousands of connections that never finish their headers
 * come from a network namespace (one address) while the victim's lookups come from another address. Real gateway
 * process, real munge credentials, real users. Loopback/namespace traffic only; the attack stops by itself.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { haveRoot, haveServices } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  startGatewayProcess,
  tempDir,
  type GatewayProcess,
} from './gateway-process.js';

const run = promisify(execFile);
const ready = haveServices('munge') && haveRoot();
const VICTIM = { name: process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2', uid: 2002 };
const ATTACKER = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
const SYSTEM = 'cluster';
const PER_ADDRESS = 64;
const ATTACK_CONNECTIONS = 3000;
const ATTACK_MS = 12_000;

// Run inside the namespace as the attacker: hold up to `count` connections that send half a request and never
// finish it, reopen what the server closes, stop after `ms`. Prints one JSON line of counts.
const ATTACK = `
const net = require('node:net');
const [host, port, count, ms] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const stats = { opened: 0, closed: 0, answers: {}, errors: 0 };
let open = 0;
let stopping = false;
function one() {
  if (stopping) return;
  const socket = net.connect({ host, port });
  let data = '';
  socket.on('connect', () => { stats.opened++; open++; socket.write('GET /api/status HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: '); });
  socket.on('data', (chunk) => (data += chunk));
  socket.on('error', () => stats.errors++);
  socket.on('close', (hadError) => {
    if (socket.connecting === false && stats.opened > 0) open = Math.max(0, open - 1);
    stats.closed++;
    const status = data.split(' ')[1];
    if (status) { const code = (data.match(/"code":"([A-Z_]+)"/) || [])[1] || status; stats.answers[code] = (stats.answers[code] || 0) + 1; }
    setTimeout(one, 50);
  });
}
for (let i = 0; i < count; i++) setTimeout(one, Math.floor(i / 100) * 20);
setTimeout(() => { stopping = true; console.log(JSON.stringify(stats)); process.exit(0); }, ms);
`;

describe.skipIf(!ready)('slow clients from one address while lookups come from another', () => {
  let dir: string;
  let gateway: GatewayProcess | undefined;
  const tag = randomBytes(3).toString('hex');
  const ns = `hd-${tag}`;
  const hostIf = `hd${tag}h`;
  const nsIf = `hd${tag}n`;
  const block = randomBytes(2).readUInt16BE(0) % 16384;
  const base = block * 4;
  const hostAddress = `10.200.${base >> 8}.${(base & 255) + 1}`;
  const nsAddress = `10.200.${base >> 8}.${(base & 255) + 2}`;

  beforeAll(async () => {
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await run('ip', ['link', 'set', nsIf, 'netns', ns]);
    await run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    await run('ip', ['link', 'set', hostIf, 'up']);
    await run('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${nsAddress}/30`, 'dev', nsIf]);
    await run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
    await run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    dir = tempDir('shifter-slow-');
    chmodSync(dir, 0o755);
    const victimDir = join(dir, 'victim');
    mkdirSync(victimDir);
    mkdirSync(join(dir, 'images'));
    chownSync(victimDir, VICTIM.uid, VICTIM.uid);
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'f'), 'victim');
    const image = join(victimDir, 'image.sqfs');
    execFileSync('mksquashfs', [tree, image, '-noappend', '-quiet', '-all-root', '-comp', 'gzip']);
    chownSync(image, VICTIM.uid, VICTIM.uid);
    chmodSync(image, 0o600);
    gateway = await startGatewayProcess(
      {
        // Bound to the host end of the namespace's link: reachable from the namespace and from this host only.
        gateway: {
          host: hostAddress,
          port: await freePort(),
          maxConnections: 512,
          maxConnectionsPerAddress: PER_ADDRESS,
          headersTimeoutMs: 2000,
          requestTimeoutMs: 4000,
          idleTimeoutMs: 5000,
        },
        storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
        systems: { [SYSTEM]: { transfer: { kind: 'local', imageDir: join(dir, 'images') } } },
        metadata: { kind: 'sqlite', path: join(dir, 'gateway.db') },
        queue: { kind: 'in-process', concurrency: 1 },
        importUsers: 'all',
        logLevel: 'warn',
      },
      { dir, name: 'slow' },
    );
    let answer = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/mine/`, {
      credential: await mungeCredential({ user: VICTIM.name }),
      body: { filepath: image, allowed_uids: String(VICTIM.uid) },
    });
    for (let i = 0; i < 200 && answer.body.status !== 'READY' && answer.body.status !== 'FAILURE'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/mine/`, {
        credential: await mungeCredential({ user: VICTIM.name }),
        body: { filepath: image },
      });
    }
    expect(answer.body.status).toBe('READY');
  });

  afterAll(async () => {
    await gateway?.stop();
    await run('ip', ['link', 'del', hostIf]).catch(() => undefined);
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${ATTACK_CONNECTIONS} half-open connections from the namespace do not stop the victim's lookups`, async () => {
    const pid = gateway!.child.pid!;
    const port = new URL(gateway!.url).port;
    const attacker = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'runuser',
        '-u',
        ATTACKER,
        '--',
        process.execPath,
        '-e',
        ATTACK,
        hostAddress,
        port,
        String(ATTACK_CONNECTIONS),
        String(ATTACK_MS),
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let report = '';
    attacker.stdout!.on('data', (chunk: Buffer) => (report += chunk.toString()));
    const finished = new Promise<void>((resolve) => attacker.once('exit', () => resolve()));
    const killer = setTimeout(() => attacker.kill('SIGKILL'), ATTACK_MS + 15_000);

    // Lookups from the host's own address for as long as the attack runs.
    const statuses: number[] = [];
    const latencies: number[] = [];
    let maxFds = 0;
    const attack = { done: false };
    void finished.then(() => (attack.done = true));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // let the attack build up
    while (!attack.done) {
      const credential = await mungeCredential({ user: VICTIM.name });
      const started = performance.now();
      const answer = await call(gateway!.url, 'GET', `/api/lookup/${SYSTEM}/custom/mine/`, { credential });
      latencies.push(performance.now() - started);
      statuses.push(answer.status);
      maxFds = Math.max(maxFds, readdirSync(`/proc/${pid}/fd`).length);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    clearTimeout(killer);
    const stats = JSON.parse(report.trim().split('\n').pop()!) as {
      opened: number;
      closed: number;
      answers: Record<string, number>;
    };
    latencies.sort((a, b) => a - b);
    console.info(
      `slow-client attack: ${stats.opened} connections opened, answers ${JSON.stringify(stats.answers)}; ${statuses.length} victim lookups, ` +
        `median ${latencies[latencies.length >> 1]!.toFixed(1)} ms, max ${latencies[latencies.length - 1]!.toFixed(1)} ms; gateway fds at most ${maxFds}`,
    );
    expect(stats.opened).toBeGreaterThanOrEqual(ATTACK_CONNECTIONS);
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.every((status) => status === 200)).toBe(true);
    // The attacker was cut off: refused past its per-address cap, timed out while holding a slot.
    expect(stats.answers.SHIFTER_TOO_MANY_CONNECTIONS ?? 0).toBeGreaterThan(0);
    expect(stats.answers.SHIFTER_REQUEST_TIMEOUT ?? 0).toBeGreaterThan(0);
    // The gateway never held more than the cap from that address (plus its own files, store, munge sockets).
    expect(maxFds).toBeLessThan(PER_ADDRESS + 100);
    expect(gateway!.child.exitCode).toBeNull();
    expect(gateway!.child.pid).toBe(pid);
    const after = await call(gateway!.url, 'GET', `/api/lookup/${SYSTEM}/custom/mine/`, {
      credential: await mungeCredential({ user: VICTIM.name }),
    });
    expect(after.status).toBe(200);
    const outsider = await call(gateway!.url, 'GET', `/api/lookup/${SYSTEM}/custom/mine/`, {
      credential: await mungeCredential({ user: ATTACKER }),
    });
    expect(outsider.status).toBe(404);
  });
});
