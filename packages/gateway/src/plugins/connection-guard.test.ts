import { connect, type Socket } from 'node:net';
import { NotFoundError, parseConfig, type Caller } from '@shifter/core';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, type GatewayImageService } from '../app.js';
import { fdBudgetWarning, serverTimeouts } from './connection-guard.js';

// Every answer of the gateway carries a catalogue code, also for what the HTTP parser and the router refuse before
// a route runs. These go over a real socket: inject() would bypass Node's parser.
const service = {
  systems: () => ['cluster'],
  async lookup() {
    throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', 'no such image');
  },
} as unknown as GatewayImageService;
const authenticator = {
  async authenticate(): Promise<Caller> {
    return { uid: 1000, gid: 1000, user: 'alice', groups: [1000], authorizedLocations: null } as unknown as Caller;
  },
};

async function start(gateway: Record<string, unknown> = {}): Promise<{ app: FastifyInstance; port: number }> {
  const config = parseConfig({
    systems: { cluster: { transfer: { kind: 'local', imageDir: '/images' } } },
    gateway: { maxConnectionsPerAddress: 3, headersTimeoutMs: 500, requestTimeoutMs: 1000, ...gateway },
  });
  const app = await buildApp({ config, service, authenticator, defaultMetrics: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as { port: number }).port };
}

/** Send raw bytes and read the whole answer (the server closes the connection). */
function raw(port: number, bytes: string | Buffer): Promise<{ status: number; body: any; headers: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      let parsed: unknown = body;
      try {
        parsed = JSON.parse(body);
      } catch {
        // not JSON
      }
      resolve({ status: Number(head.split(' ')[1]), body: parsed, headers: head });
    });
    socket.write(bytes);
    socket.end();
  });
}

describe('answers outside the routes', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('bad percent-encoding in the path: 400 SHIFTER_REQUEST_MALFORMED (not FST_ERR_BAD_URL)', async () => {
    const started = await start();
    app = started.app;
    const answer = await raw(
      started.port,
      'GET /api/lookup/cluster/docker/%E0%A4%A/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      code: 'SHIFTER_REQUEST_MALFORMED',
      error: 'SHIFTER_REQUEST_MALFORMED',
      status: 400,
    });
  });

  it('a raw NUL in the path and Content-Length with Transfer-Encoding: 400 SHIFTER_REQUEST_MALFORMED', async () => {
    const started = await start();
    app = started.app;
    const nul = await raw(
      started.port,
      Buffer.from('GET /api/lookup/cluster/docker/a\0b/ HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'),
    );
    expect(nul.status).toBe(400);
    expect(nul.body).toMatchObject({ code: 'SHIFTER_REQUEST_MALFORMED' });
    const smuggle = await raw(
      started.port,
      'POST /api/pull/cluster/docker/a/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(smuggle.status).toBe(400);
    expect(smuggle.body).toMatchObject({ code: 'SHIFTER_REQUEST_MALFORMED' });
  });

  it('headers past gateway.maxHeaderBytes: 431 SHIFTER_HEADERS_TOO_LARGE; a 64 KiB credential still reaches the code', async () => {
    const started = await start({ maxHeaderBytes: 80 * 1024 });
    app = started.app;
    const big = await raw(
      started.port,
      `GET /api/status HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(90 * 1024)}\r\n\r\n`,
    );
    expect(big.status).toBe(431);
    expect(big.body).toMatchObject({ code: 'SHIFTER_HEADERS_TOO_LARGE' });
    // 20 KiB of header: past Node's 16 KiB default, under ours, so the route answers (with its own code).
    const mid = await raw(
      started.port,
      `GET /api/lookup/cluster/docker/x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nauthentication: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
    );
    expect(mid.status).toBe(404);
    expect(mid.body).toMatchObject({ code: 'SHIFTER_IMAGE_NOT_FOUND' });
  });

  it('a method the path does not offer: 405 SHIFTER_METHOD_NOT_ALLOWED with Allow', async () => {
    const started = await start();
    app = started.app;
    for (const [method, path, allow] of [
      ['DELETE', '/api/lookup/cluster/docker/x/', 'GET, HEAD'],
      ['GET', '/api/pull/cluster/docker/x/', 'POST'],
      ['PUT', '/api/status', 'GET, HEAD'],
    ] as const) {
      const answer = await app.inject({ method, url: path });
      expect(answer.statusCode, `${method} ${path}`).toBe(405);
      expect(answer.headers.allow).toBe(allow);
      expect(answer.json()).toMatchObject({
        code: 'SHIFTER_METHOD_NOT_ALLOWED',
        details: { allow: allow.split(', ') },
      });
    }
    expect((await app.inject({ method: 'GET', url: '/api/nothing-here' })).json()).toMatchObject({
      code: 'SHIFTER_ROUTE_NOT_FOUND',
    });
  });

  it('a client that never finishes its headers: 408 SHIFTER_REQUEST_TIMEOUT, then the connection is closed', async () => {
    const started = await start();
    app = started.app;
    // Node answers a request past headersTimeout by reporting ERR_HTTP_REQUEST_TIMEOUT for its socket as a client
    // error; the test reports it at once instead of waiting for Node's deadline (serverTimeouts above sets the
    // deadlines, and the slow-clients integration test lets a real gateway run into them).
    const serverSocket = new Promise<Socket>((resolve) => app!.server.once('connection', resolve));
    const answer = new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: started.port });
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('close', () => resolve(data));
      socket.on('error', () => undefined);
      socket.write('GET /api/status HTTP/1.1\r\nHost: x\r\n');
    });
    const timedOut = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
    app.server.emit('clientError', timedOut, await serverSocket);
    const text = await answer;
    expect(text.split(' ')[1]).toBe('408');
    expect(JSON.parse(text.split('\r\n\r\n')[1]!)).toMatchObject({ code: 'SHIFTER_REQUEST_TIMEOUT' });
  });

  it('more connections from one address than maxConnectionsPerAddress: the extra one is answered 503 and closed', async () => {
    const started = await start({ maxConnectionsPerAddress: 3 });
    app = started.app;
    const held = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<ReturnType<typeof connect>>((resolve) => {
            const socket = connect({ host: '127.0.0.1', port: started.port }, () => resolve(socket));
          }),
      ),
    );
    const extra = await raw(started.port, 'GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(extra.status).toBe(503);
    expect(extra.body).toMatchObject({ code: 'SHIFTER_TOO_MANY_CONNECTIONS' });
    for (const socket of held) socket.destroy();
  });

  it('documents the type values in the OpenAPI document', async () => {
    const started = await start();
    app = started.app;
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    const lookup =
      doc.paths['/api/lookup/{system}/{type}/{*}'] ??
      Object.entries(doc.paths).find(([path]) => path.startsWith('/api/lookup/'))![1];
    const type = (lookup as any).get.parameters.find((parameter: { name: string }) => parameter.name === 'type');
    expect(type.schema.enum).toEqual(['docker', 'custom']);
  });
});

describe('serverTimeouts and the file-descriptor budget', () => {
  it('keeps headersTimeout ≤ requestTimeout and checks the deadlines at least every second', () => {
    const options = serverTimeouts(parseConfig({}).gateway);
    expect(options.http.headersTimeout).toBe(20_000);
    expect(options.http.requestTimeout).toBeGreaterThanOrEqual(options.http.headersTimeout);
    expect(options.http.connectionsCheckingInterval).toBeLessThanOrEqual(1_000);
    expect(options.http.maxHeaderSize).toBe(80 * 1024);
  });

  it('warns when maxConnections + fdReserve exceeds RLIMIT_NOFILE', () => {
    const gateway = parseConfig({}).gateway;
    expect(fdBudgetWarning(gateway, 1024)).toContain('exceeds the open-file limit 1024');
    expect(fdBudgetWarning(gateway, 65536)).toBeNull();
  });
});
