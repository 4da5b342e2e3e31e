/**
 * Distributed deployment: `serve` on the host, and the system's `worker` in its own network namespace (own address,
 * veth link) reaching Redis and the store (FerretDB) over that link, and delivering images by ssh/scp to sshd
 * (Debian openssh-server) in the namespace. Redis listens on loopback and the link's host address only; FerretDB,
 * which takes one listen address, on the link's host address only; the registry is reached through a TCP relay on the
 * link's host address.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  pullUntilDone,
  startGatewayProcess,
  tempDir,
  type GatewayProcess,
} from './gateway-process.js';

const NETNS_SCRIPT = fileURLToPath(new URL('./netns-worker.sh', import.meta.url));
const FERRETDB = process.env.SHIFTER_TEST_FERRETDB_BIN ?? '/root/go/bin/ferretdb';
const ready = haveServices('registry', 'munge') && haveRoot();

const NS = `shgw${process.pid % 10000}`;
const SUBNET = 10 + (process.pid % 200);
const HOST_ADDR = `10.233.${SUBNET}.1`;
const NS_ADDR = `10.233.${SUBNET}.2`;

async function waitForPort(host: string, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${host}:${port} did not open`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(!ready)('distributed gateway: worker in its own network namespace, delivery by ssh', () => {
  let dir: string;
  let imageDir: string;
  const children: ChildProcess[] = [];
  let relay: Server | undefined;
  let serve: GatewayProcess | undefined;
  let worker: GatewayProcess | undefined;
  let config: Record<string, unknown>;

  beforeAll(async () => {
    dir = tempDir('shifter-gw-dist-');
    imageDir = join(dir, 'images');
    mkdirSync(imageDir);
    execFileSync(NETNS_SCRIPT, ['up', NS, join(dir, 'ns'), HOST_ADDR, NS_ADDR]);

    const redisPort = await freePort();
    children.push(
      spawn(
        'redis-server',
        [
          '--port',
          String(redisPort),
          '--bind',
          `127.0.0.1 ${HOST_ADDR}`,
          '--save',
          '',
          '--appendonly',
          'no',
          '--protected-mode',
          'no',
        ],
        {
          stdio: 'ignore',
        },
      ),
    );
    const mongoPort = await freePort();
    const debugPort = await freePort();
    mkdirSync(join(dir, 'ferret'));
    children.push(
      spawn(
        FERRETDB,
        [
          '--handler=sqlite',
          `--sqlite-url=file:${join(dir, 'ferret')}/`,
          `--listen-addr=${HOST_ADDR}:${mongoPort}`,
          `--state-dir=${join(dir, 'ferret')}`,
          `--debug-addr=127.0.0.1:${debugPort}`,
          '--telemetry=disable',
          '--log-level=error',
        ],
        {
          stdio: 'ignore',
        },
      ),
    );
    const [registryHost, registryPort] = serviceValue('registry').split(':');
    const relayPort = await freePort();
    relay = createServer((socket) => {
      const upstream = createConnection({ host: registryHost!, port: Number(registryPort) });
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay!.listen(relayPort, HOST_ADDR, resolve));
    await waitForPort(HOST_ADDR, redisPort);
    await waitForPort(HOST_ADDR, mongoPort);

    const sshOptions = ['-o', 'LogLevel=ERROR'];
    config = {
      gateway: { host: '127.0.0.1', port: await freePort(), instances: 2 },
      storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
      // The harness registry is no configured location (allowedRegistries defaults to "configured").
      allowedRegistries: 'any',
      metadata: { kind: 'mongo', url: `mongodb://${HOST_ADDR}:${mongoPort}/`, database: 'shifter' },
      queue: { kind: 'redis', url: `redis://${HOST_ADDR}:${redisPort}`, prefix: 'dist' },
      systems: {
        remote: {
          transfer: {
            kind: 'ssh',
            host: [NS_ADDR],
            username: 'root',
            key: join(dir, 'ns', 'id_ed25519'),
            knownHostsFile: join(dir, 'ns', 'known_hosts'),
            imageDir,
            sshOptions,
            scpOptions: sshOptions,
          },
          admins: ['root'],
        },
      },
      registries: { lab: { url: `http://${HOST_ADDR}:${relayPort}`, insecure: true } },
      jobs: { leaseMs: 10_000, heartbeatMs: 2000 },
      conversion: { compression: 'lz4' },
    };
    serve = await startGatewayProcess(config, { dir, name: 'serve' });
    worker = await startGatewayProcess(
      { ...config, storage: { cacheDir: join(dir, 'worker-cache'), expandDir: join(dir, 'worker-expand') } },
      {
        dir,
        name: 'worker',
        command: 'worker',
        args: ['--system', 'remote'],
        wrap: ['ip', 'netns', 'exec', NS],
      },
    );
  });

  afterAll(async () => {
    await worker?.stop();
    await serve?.stop();
    relay?.close();
    for (const child of children) child.kill('SIGTERM');
    if (dir) execFileSync(NETNS_SCRIPT, ['down', NS, join(dir, 'ns')]);
  });

  it('runs the worker in the namespace, pulls through the link and delivers by ssh', async () => {
    expect(
      execFileSync('ip', ['netns', 'identify', String(worker!.child.pid)])
        .toString()
        .trim(),
    ).toBe(NS);
    const answer = await pullUntilDone(
      serve!.url,
      'remote',
      'lab/test/busybox:latest',
      () => mungeCredential(),
      120_000,
    );
    expect(answer.body.status, `${JSON.stringify(answer.body)}\n${worker!.output()}`).toBe('READY');
    const id = answer.body.id as string;
    expect(readdirSync(imageDir).sort()).toEqual([`${id}.meta`, `${id}.squashfs`]);
    // The worker kept its own blob cache; serve downloaded nothing.
    expect(existsSync(join(dir, 'worker-cache'))).toBe(true);
    expect(existsSync(join(dir, 'cache'))).toBe(false);
    const lookup = await call(serve!.url, 'GET', '/api/lookup/remote/docker/lab%2Ftest%2Fbusybox%3Alatest/', {
      credential: await mungeCredential(),
    });
    expect(lookup.body).toMatchObject({ status: 'READY', id });
  });

  it('a second serve instance on the same store answers the same image', async () => {
    const second = await startGatewayProcess(
      { ...config, gateway: { host: '127.0.0.1', port: await freePort(), instances: 2 } },
      { dir, name: 'serve2' },
    );
    try {
      const list = await call(second.url, 'GET', '/api/list/remote/', { credential: await mungeCredential() });
      expect(list.status).toBe(200);
      expect(list.body.list.map((image: { tag: string[] }) => image.tag).flat()).toContain('lab/test/busybox:latest');
    } finally {
      await second.stop();
    }
  });

  it('refuses to run a worker on the embedded store', async () => {
    const embedded = {
      ...config,
      metadata: { kind: 'sqlite', path: join(dir, 'x.db') },
      queue: { kind: 'in-process' },
      gateway: { host: '127.0.0.1', port: 1 },
    };
    await expect(
      startGatewayProcess(embedded, { dir, name: 'bad-worker', command: 'worker', args: ['--system', 'remote'] }),
    ).rejects.toThrow(/SHIFTER_CONFIG_INVALID[\s\S]*metadata\.kind/);
  });
});
