import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ShifterError } from '../errors/index.js';
import { GatewayClient, isWorkingStatus } from './gateway-client.js';

interface Seen {
  method: string;
  url: string;
  authentication: string | undefined;
  body: string;
}

type Handler = (
  request: IncomingMessage,
  body: string,
) => { status: number; body?: unknown; raw?: string; delayMs?: number };

/** A real loopback HTTP server standing in for a gateway; records every request. */
async function startGateway(handler: Handler): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      seen.push({
        method: request.method ?? '',
        url: request.url ?? '',
        authentication: request.headers.authentication as string | undefined,
        body,
      });
      const answer = handler(request, body);
      const send = (): void => {
        response.statusCode = answer.status;
        response.setHeader('content-type', 'application/json');
        response.end(answer.raw ?? (answer.body === undefined ? '' : JSON.stringify(answer.body)));
      };
      // eslint-disable-next-line no-restricted-syntax -- only under vi.useFakeTimers ('treats a timeout as unreachable')
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

/** A URL on which nothing listens (a server started and closed again). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function image(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'a'.repeat(64),
    system: 'cluster',
    itype: 'docker',
    tag: ['ubuntu:22.04'],
    status: 'READY',
    userACL: [],
    groupACL: [],
    ENV: ['PATH=/bin'],
    ENTRY: 'MISSING',
    WORKDIR: '/',
    LABELS: {},
    last_pull: 1_700_000_000.5,
    status_message: 'Image ready',
    ...overrides,
  };
}

async function caught(promise: Promise<unknown>): Promise<ShifterError> {
  try {
    await promise;
  } catch (error) {
    if (ShifterError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected a ShifterError');
}

const servers: Server[] = [];
let credentialCounter = 0;
const authenticate = async (payload: string): Promise<string> => `cred-${++credentialCounter}:${payload}`;

beforeEach(() => {
  credentialCounter = 0;
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

async function gateway(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const started = await startGateway(handler);
  servers.push(started.server);
  return started;
}

describe('GatewayClient', () => {
  it('looks up an image with an escaped tag and a credential header', async () => {
    const gw = await gateway(() => ({ status: 200, body: image() }));
    const client = new GatewayClient({ urls: [gw.url], system: 'cluster', authenticate });
    const result = await client.lookup('docker', '127.0.0.1:5000/test/busybox:latest');
    expect(result.id).toBe('a'.repeat(64));
    expect(gw.seen).toEqual([
      {
        method: 'GET',
        url: '/api/lookup/cluster/docker/127.0.0.1%3A5000%2Ftest%2Fbusybox%3Alatest/',
        authentication: 'cred-1:',
        body: '',
      },
    ]);
  });

  it('sends ACLs in the body and registry credentials only in the signed payload', async () => {
    const gw = await gateway(() => ({ status: 200, body: image({ status: 'PENDING' }) }));
    const client = new GatewayClient({ urls: [gw.url], system: 'cluster', authenticate });
    await client.pull('docker', 'private/busybox:latest', {
      allowedUids: [1001, 1002],
      allowedGids: [50],
      credentials: { default: 'user:p:ss' },
    });
    const [request] = gw.seen;
    expect(request?.method).toBe('POST');
    expect(JSON.parse(request!.body)).toEqual({ allowed_uids: '1001,1002', allowed_gids: '50' });
    expect(request?.authentication).toBe('cred-1:{"authorized_locations":{"default":"user:p:ss"}}');
    expect(request?.url).not.toContain('user');
  });

  it('fails over from a dead URL to a live one with a fresh credential per attempt', async () => {
    const gw = await gateway(() => ({ status: 200, body: { list: [image()] } }));
    const dead = await deadUrl();
    // random() = 0 swaps the two URLs (live first), 0.99 keeps them (dead first): both orders are exercised.
    for (const random of [() => 0, () => 0.99]) {
      const client = new GatewayClient({ urls: [dead, gw.url], system: 'cluster', authenticate, random });
      const images = await client.list();
      expect(images).toHaveLength(1);
    }
    expect(gw.seen.map((request) => request.url)).toEqual(['/api/list/cluster/', '/api/list/cluster/']);
    // One of the two runs tried the dead URL first, so three credentials were made for two answered requests.
    expect(credentialCounter).toBe(3);
    expect(new Set(gw.seen.map((request) => request.authentication)).size).toBe(2);
  });

  it('fails over on a 503 without an envelope (a proxy before a dead gateway)', async () => {
    const proxy = await gateway(() => ({ status: 503, raw: '<html>bad gateway</html>' }));
    const live = await gateway(() => ({ status: 200, body: image() }));
    const client = new GatewayClient({ urls: [proxy.url, live.url], system: 'cluster', random: () => 0.99 });
    await expect(client.lookup('docker', 'x')).resolves.toMatchObject({ status: 'READY' });
    expect(proxy.seen).toHaveLength(1);
  });

  it('reports SHIFTER_GATEWAY_UNAVAILABLE with every attempt when no gateway answers', async () => {
    const client = new GatewayClient({ urls: [await deadUrl(), await deadUrl()], system: 'cluster' });
    const error = await caught(client.lookup('docker', 'ubuntu'));
    expect(error.code).toBe('SHIFTER_GATEWAY_UNAVAILABLE');
    expect(error.exitCode).toBe(69);
    expect(error.details.attempts).toHaveLength(2);
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('treats a timeout as unreachable', async () => {
    // Timers are fake: the gateway would answer after 400 ms, and the client's 50 ms pass the moment the request
    // has arrived (the client armed its timer before sending), so nothing waits for wall-clock time.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const slow = await gateway(() => {
        vi.advanceTimersByTime(50);
        return { status: 200, body: image(), delayMs: 400 };
      });
      const client = new GatewayClient({ urls: [slow.url], system: 'cluster', timeoutMs: 50 });
      const error = await caught(client.lookup('docker', 'x'));
      expect(error.code).toBe('SHIFTER_GATEWAY_UNAVAILABLE');
      expect(error.message).toContain('no answer within 50 ms');
    } finally {
      vi.useRealTimers();
    }
  });

  it('maps the error envelope to a ShifterError with the gateway code and does not fail over', async () => {
    const first = await gateway(() => ({
      status: 404,
      body: {
        status: 404,
        error: 'SHIFTER_IMAGE_NOT_FOUND',
        code: 'SHIFTER_IMAGE_NOT_FOUND',
        message: 'no image docker:x on cluster',
        details: { tag: 'x' },
      },
    }));
    const second = await gateway(() => ({ status: 200, body: image() }));
    const client = new GatewayClient({ urls: [first.url, second.url], system: 'cluster', random: () => 0.99 });
    const error = await caught(client.lookup('docker', 'x'));
    expect(error.code).toBe('SHIFTER_IMAGE_NOT_FOUND');
    expect(error.name).toBe('NotFoundError');
    expect(error.message).toBe('no image docker:x on cluster');
    expect(error.details).toMatchObject({ tag: 'x', httpStatus: 404, gateway: first.url });
    expect(second.seen).toHaveLength(0);
  });

  it('keeps an unknown code from a newer gateway in details', async () => {
    const gw = await gateway(() => ({
      status: 500,
      body: { status: 500, error: 'x', code: 'SHIFTER_FUTURE_THING', message: 'new' },
    }));
    const error = await caught(new GatewayClient({ urls: [gw.url], system: 's' }).list());
    expect(error.code).toBe('SHIFTER_INTERNAL');
    expect(error.details.gatewayCode).toBe('SHIFTER_FUTURE_THING');
  });

  it('understands upstream gateways that answer 404 {status, error, message}', async () => {
    const gw = await gateway(() => ({
      status: 404,
      body: { status: 404, error: 'image not found', message: 'Not Found: /api/lookup/x' },
    }));
    const error = await caught(new GatewayClient({ urls: [gw.url], system: 's' }).lookup('docker', 'x'));
    expect(error.code).toBe('SHIFTER_IMAGE_NOT_FOUND');
  });

  it('rejects answers that are not the gateway protocol', async () => {
    const gw = await gateway((request) =>
      request.url?.startsWith('/api/lookup') ? { status: 200, raw: 'hello' } : { status: 200, body: { nope: 1 } },
    );
    const client = new GatewayClient({ urls: [gw.url], system: 's' });
    expect((await caught(client.lookup('docker', 'x'))).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
    expect((await caught(client.list())).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
    expect((await caught(client.queue())).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
    expect((await caught(client.expire('docker', 'x'))).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
    expect((await caught(client.autoexpire())).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
    expect((await caught(client.status())).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
    expect((await caught(client.metrics())).code).toBe('SHIFTER_GATEWAY_PROTOCOL');
  });

  it('polls a pull until READY, reporting every state', async () => {
    const states = ['PENDING', 'PULLING', 'CONVERSION', 'READY'];
    let call = 0;
    const gw = await gateway(() => ({
      status: 200,
      body: image({ status: states[Math.min(call++, states.length - 1)] }),
    }));
    // The pauses between polls are recorded, not waited for.
    const pauses: number[] = [];
    const sleep = async (ms: number): Promise<void> => void pauses.push(ms);
    const client = new GatewayClient({ urls: [gw.url], system: 'cluster', authenticate, sleep });
    const seenStates: string[] = [];
    const done = await client.pullAndWait(
      'docker',
      'ubuntu:22.04',
      {},
      { intervalMs: 5, onUpdate: (update) => seenStates.push(update.status) },
    );
    expect(done.status).toBe('READY');
    expect(seenStates).toEqual(states);
    expect(pauses).toEqual([5, 5, 5]);
    expect(gw.seen.every((request) => request.method === 'POST')).toBe(true);
    expect(new Set(gw.seen.map((request) => request.authentication)).size).toBe(4);
  });

  it('turns a FAILURE record into the job error code', async () => {
    const gw = await gateway(() => ({
      status: 200,
      body: image({
        status: 'FAILURE',
        code: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN',
        status_message: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN: no tag nope',
      }),
    }));
    const error = await caught(
      new GatewayClient({ urls: [gw.url], system: 'c' }).pullAndWait('docker', 'x:nope', {}, { intervalMs: 1 }),
    );
    expect(error.code).toBe('SHIFTER_REGISTRY_MANIFEST_UNKNOWN');
    expect(error.message).toBe('docker:x:nope: no tag nope');
    expect(error.exitCode).toBe(66);
  });

  it('stops waiting when the signal aborts', async () => {
    const gw = await gateway(() => ({ status: 200, body: image({ status: 'PULLING' }) }));
    const controller = new AbortController();
    const client = new GatewayClient({ urls: [gw.url], system: 'c' });
    // The caller gives up after the first answer, while the client waits the 10 s before its next poll.
    const waiting = client.pullAndWait(
      'docker',
      'x',
      {},
      { intervalMs: 10_000, signal: controller.signal, onUpdate: () => controller.abort() },
    );
    expect((await caught(waiting)).code).toBe('SHIFTER_USAGE_INVALID_ARGUMENT');
  });

  it('sends imports, expiry, autoexpire, queue, metrics and status to upstream paths', async () => {
    const gw = await gateway((request) => {
      const url = request.url ?? '';
      if (url.startsWith('/api/doimport')) return { status: 200, body: image({ itype: 'custom', status: 'HASHING' }) };
      if (url.startsWith('/api/expire')) return { status: 200, body: { status: true } };
      if (url.startsWith('/api/autoexpire')) return { status: 200, body: { status: ['b'.repeat(64)] } };
      if (url.startsWith('/api/queue'))
        return { status: 200, body: { list: [{ status: 'PULLING', image: 'docker:x' }] } };
      if (url.startsWith('/api/metrics'))
        return { status: 200, body: [{ user: 'u', uid: 1, system: 's', type: 'docker', tag: 'x', id: 'i', time: 1 }] };
      return { status: 200, body: { status: 'up', version: '0.1.0', systems: ['s'] } };
    });
    const client = new GatewayClient({ urls: [gw.url], system: 's', authenticate });
    await expect(
      client.import('custom', 'mine:1', { filepath: '/scratch/img.squashfs', allowedUids: [7] }),
    ).resolves.toMatchObject({ status: 'HASHING' });
    await expect(client.expire('docker', 'x:1')).resolves.toEqual({ status: true });
    await expect(client.autoexpire()).resolves.toEqual({ status: ['b'.repeat(64)] });
    await expect(client.queue()).resolves.toEqual([{ status: 'PULLING', image: 'docker:x' }]);
    await expect(client.metrics(5)).resolves.toHaveLength(1);
    await expect(client.status()).resolves.toEqual({ status: 'up', version: '0.1.0', systems: ['s'] });
    expect(gw.seen.map((request) => `${request.method} ${request.url}`)).toEqual([
      'POST /api/doimport/s/custom/mine%3A1/',
      'GET /api/expire/s/docker/x%3A1/',
      'GET /api/autoexpire/s/',
      'GET /api/queue/s/',
      'GET /api/metrics/s/?limit=5',
      'GET /api/status',
    ]);
    expect(JSON.parse(gw.seen[0]!.body)).toEqual({
      filepath: '/scratch/img.squashfs',
      format: 'squashfs',
      allowed_uids: '7',
    });
    // The health check needs no credential, so none is made.
    expect(gw.seen[5]!.authentication).toBeUndefined();
  });

  it('talks to an https gateway whose CA Node trusts (NODE_EXTRA_CA_CERTS)', async () => {
    // Node reads NODE_EXTRA_CA_CERTS only at start-up, so the client runs in a child process.
    const dir = await mkdtemp(join(tmpdir(), 'gw-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ],
        { stdio: 'ignore' },
      );
      const server = createHttpsServer(
        { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) },
        (_request, response) => {
          response.setHeader('content-type', 'application/json');
          response.end(JSON.stringify({ status: 'up', version: 'tls', systems: ['s'] }));
        },
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server as unknown as Server);
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const script = `import { GatewayClient } from ${JSON.stringify(new URL('./gateway-client.ts', import.meta.url).href)};
const client = new GatewayClient({ urls: [${JSON.stringify(url)}], system: 's' });
console.log(JSON.stringify(await client.status()));`;
      const run = (extraCa: boolean) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(
            process.execPath,
            ['--conditions=@shifter/source', '--import', 'tsx', '--input-type=module', '-e', script],
            {
              env: {
                ...process.env,
                ...(extraCa ? { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') } : { NODE_EXTRA_CA_CERTS: '' }),
              },
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
          child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        });
      const trusted = await run(true);
      expect(trusted.code).toBe(0);
      expect(JSON.parse(trusted.stdout)).toEqual({ status: 'up', version: 'tls', systems: ['s'] });
      // Without the CA the certificate is refused: like the runtime, a configuration problem (gatewayCaPath).
      const untrusted = await run(false);
      expect(untrusted.code).not.toBe(0);
      expect(untrusted.stderr).toMatch(/SHIFTER_CONFIG_INVALID[\s\S]*certificate not trusted[\s\S]*(SELF_SIGNED|CERT)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('verifies an https gateway against the given trust anchors only (ca), failing over past an untrusted one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gw-ca-'));
    try {
      const makeCert = (name: string): void => {
        execFileSync(
          'openssl',
          ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout']
            .concat([join(dir, `${name}-key.pem`), '-out', join(dir, `${name}.pem`), '-days', '1'])
            .concat(['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']),
          { stdio: 'ignore' },
        );
      };
      makeCert('site');
      makeCert('other');
      const listen = async (name: string): Promise<string> => {
        const server = createHttpsServer(
          { key: await readFile(join(dir, `${name}-key.pem`)), cert: await readFile(join(dir, `${name}.pem`)) },
          (_request, response) => {
            response.setHeader('content-type', 'application/json');
            response.end(JSON.stringify({ status: 'up', version: name, systems: ['s'] }));
          },
        );
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        servers.push(server as unknown as Server);
        return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      };
      const site = await listen('site');
      const other = await listen('other');
      const ca = await readFile(join(dir, 'site.pem'), 'utf8');
      const trusted = new GatewayClient({ urls: [site], system: 's', ca });
      await expect(trusted.status()).resolves.toMatchObject({ version: 'site' });
      // The other gateway's certificate is not signed by the anchors: skipped, whatever the order.
      for (const random of [() => 0, () => 0.99]) {
        const failover = new GatewayClient({ urls: [other, site], system: 's', ca: [ca], random });
        await expect(failover.status()).resolves.toMatchObject({ version: 'site' });
      }
      const refused = new GatewayClient({ urls: [other], system: 's', ca });
      await expect(refused.status()).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INVALID',
        message: expect.stringMatching(/certificate not trusted.*gatewayCaPath/),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('uses the given undici dispatcher', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agent
      .get('http://gw.example:8000')
      .intercept({ path: '/api/status' })
      .reply(200, { status: 'up', version: 'x', systems: [] });
    const client = new GatewayClient({ urls: ['http://gw.example:8000/'], system: 's', dispatcher: agent });
    await expect(client.status()).resolves.toMatchObject({ status: 'up' });
    await agent.close();
  });

  it.each([
    [{ urls: [], system: 's' }, 'imageGateway'],
    [{ urls: ['ftp://x'], system: 's' }, 'imageGateway'],
    [{ urls: ['not a url'], system: 's' }, 'imageGateway'],
    [{ urls: ['http://x'], system: '' }, 'system'],
    [{ urls: ['http://x'], system: 's', timeoutMs: 0 }, 'gatewayTimeout'],
  ])('refuses bad options %j', (options, key) => {
    try {
      new GatewayClient(options);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'SHIFTER_CONFIG_INVALID', details: { key } });
    }
  });

  it('refuses bad arguments before any request', async () => {
    const client = new GatewayClient({ urls: ['http://127.0.0.1:9'], system: 's' });
    expect((await caught(client.lookup('docker', ''))).code).toBe('SHIFTER_USAGE_INVALID_ARGUMENT');
    expect((await caught(client.pull('docker', 'x', { allowedUids: [-1] }))).code).toBe(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
    );
    expect((await caught(client.import('custom', 'x', { filepath: 'relative.sqfs' }))).code).toBe(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
    );
    expect((await caught(client.metrics(0))).code).toBe('SHIFTER_USAGE_INVALID_ARGUMENT');
  });
});

describe('isWorkingStatus', () => {
  it('treats upstream working states and HASHING as working', () => {
    for (const status of [
      'MISSING',
      'INIT',
      'PENDING',
      'PULLING',
      'EXAMINATION',
      'CONVERSION',
      'TRANSFER',
      'HASHING',
    ]) {
      expect(isWorkingStatus(status)).toBe(true);
    }
    for (const status of ['READY', 'FAILURE', 'EXPIRED', 'EXPIRING']) expect(isWorkingStatus(status)).toBe(false);
  });
});
