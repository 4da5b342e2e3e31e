import {
  AuthError,
  NotFoundError,
  ShifterError,
  parseConfig,
  toImageResponse,
  upstreamJson,
  type Caller,
  type ImageRecord,
} from '@shifter/core';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, type GatewayImageService } from './app.js';

const config = parseConfig({
  systems: { cluster: { transfer: { kind: 'local', imageDir: '/images' }, admins: ['root'] } },
  gateway: { bodyLimit: 1024 },
});

const record = (overrides: Partial<ImageRecord> = {}): ImageRecord => ({
  recordId: 'r1',
  revision: 1,
  system: 'cluster',
  itype: 'docker',
  pulltag: 'busybox:latest',
  tags: ['busybox:latest'],
  tagAccess: [{ tag: 'busybox:latest', private: false, userAcl: [], groupAcl: [] }],
  requester: null,
  status: 'READY',
  statusMessage: 'Image ready',
  imageId: 'ab'.repeat(32),
  manifestDigest: `sha256:${'ab'.repeat(32)}`,
  format: 'squashfs',
  userAcl: [],
  groupAcl: [],
  private: false,
  env: ['PATH=/bin'],
  entrypoint: null,
  cmd: ['sh'],
  workdir: '/',
  labels: { a: 'b' },
  user: null,
  lastPull: 1_700_000_000_000,
  lastHeartbeat: null,
  expiration: null,
  filepath: null,
  error: null,
  progress: null,
  jobId: null,
  createdAt: 1_700_000_000_000,
  updatedAt: 1_700_000_000_000,
  ...overrides,
});

const calls: { method: string; args: unknown[] }[] = [];
const service: GatewayImageService = {
  systems: () => ['cluster'],
  async lookup(system, type, tag, caller) {
    calls.push({ method: 'lookup', args: [system, type, tag, caller] });
    if (tag === 'missing:latest') throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', 'no such image');
    if (tag === 'boom') throw new Error('database password=secret exploded');
    return record({ tags: [tag] });
  },
  async list() {
    return [record()];
  },
  async pull(system, type, tag, caller, acl) {
    calls.push({ method: 'pull', args: [system, type, tag, caller, acl] });
    return record({
      status: 'PULLING',
      imageId: null,
      progress: { step: 'Pulling layer 1/2', layer: 'sha256:aa', bytesDone: 2048, bytesTotal: 4096 },
    });
  },
  async importImage() {
    return record({ status: 'PENDING' });
  },
  async expire(_s, _t, _tag, caller) {
    if (caller.user !== 'root') throw new AuthError('SHIFTER_AUTH_FORBIDDEN', 'not an admin');
    return true;
  },
  async autoexpire() {
    return ['x'];
  },
  async metrics() {
    return [{ user: 'u', uid: 1, system: 'cluster', itype: 'docker', tag: 't', imageId: 'i', time: 2000 }];
  },
  async queue() {
    return [{ status: 'PULLING', image: 'busybox:latest', status_message: 'x' }];
  },
};

const authenticator = {
  async authenticate(system: string, credential: string | undefined): Promise<Caller> {
    if (system !== 'cluster') throw new NotFoundError('SHIFTER_SYSTEM_UNKNOWN', 'unknown system');
    if (!credential) throw new AuthError('SHIFTER_AUTH_REQUIRED', 'credential required');
    if (credential === 'replayed') throw new AuthError('SHIFTER_AUTH_REPLAYED', 'replayed');
    if (credential === 'down') throw new AuthError('SHIFTER_AUTH_UNAVAILABLE', 'munged down');
    const [user, uid] = credential.split(':');
    return { uid: Number(uid ?? 1000), gid: 1000, user: user ?? 'alice', groups: [1000], authorizedLocations: null };
  },
};

let app: Awaited<ReturnType<typeof buildApp>> | undefined;
const build = async () =>
  (app = await buildApp({ config, service, authenticator, version: '1.2.3', defaultMetrics: false }));
afterEach(async () => {
  calls.length = 0;
  await app?.close();
});

describe('buildApp: open endpoints', () => {
  it('answers /api/status, the OpenAPI document and /metrics without credentials and without image data', async () => {
    const gateway = await build();
    const status = await gateway.inject({ method: 'GET', url: '/api/status' });
    expect(status.statusCode).toBe(200);
    expect(status.json()).toEqual({ status: 'up', version: '1.2.3', systems: ['cluster'] });

    await gateway.inject({
      method: 'GET',
      url: '/api/lookup/cluster/docker/secret-image%3A1/',
      headers: { authentication: 'alice:1000' },
    });
    const metrics = await gateway.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('shifter_gateway_requests_total');
    expect(metrics.body).toContain('route="/api/lookup/:system/:type/*"');
    expect(metrics.body).not.toContain('secret-image');
    // Counted per route, method and status (children of the label sets are reused across requests).
    await gateway.inject({
      method: 'GET',
      url: '/api/lookup/cluster/docker/other%3A1/',
      headers: { authentication: 'alice:1000' },
    });
    await gateway.inject({ method: 'GET', url: '/api/lookup/cluster/docker/x/' });
    const again = (await gateway.inject({ method: 'GET', url: '/metrics' })).body;
    expect(again).toContain(
      'shifter_gateway_requests_total{route="/api/lookup/:system/:type/*",method="GET",status_code="200"} 2',
    );
    expect(again).toContain(
      'shifter_gateway_requests_total{route="/api/lookup/:system/:type/*",method="GET",status_code="401"} 1',
    );
    expect(again).toContain(
      'shifter_gateway_request_duration_seconds_count{route="/api/lookup/:system/:type/*",method="GET"} 3',
    );

    const openapi = await gateway.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(openapi.statusCode).toBe(200);
    const document = openapi.json() as { openapi: string; paths: Record<string, unknown> };
    expect(document.openapi).toBe('3.1.0');
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/api/pull/{system}/{type}/{*}', '/api/status']),
    );
    const ui = await gateway.inject({ method: 'GET', url: '/api/docs' });
    expect(ui.statusCode).toBeLessThan(400);
  });
});

describe('buildApp: authentication', () => {
  it('refuses every image route without a credential, including /api/queue', async () => {
    const gateway = await build();
    for (const [method, url] of [
      ['GET', '/api/list/cluster/'],
      ['GET', '/api/lookup/cluster/docker/busybox/'],
      ['POST', '/api/pull/cluster/docker/busybox/'],
      ['POST', '/api/doimport/cluster/custom/x/'],
      ['GET', '/api/expire/cluster/docker/busybox/'],
      ['GET', '/api/autoexpire/cluster/'],
      ['GET', '/api/metrics/cluster/'],
      ['GET', '/api/queue/cluster/'],
    ] as const) {
      const response = await gateway.inject({ method, url });
      expect(response.statusCode, url).toBe(401);
      expect(response.json()).toMatchObject({
        status: 401,
        code: 'SHIFTER_AUTH_REQUIRED',
        error: 'SHIFTER_AUTH_REQUIRED',
      });
    }
  });

  it('maps verifier failures to their codes (replayed 401, munged down 503 with retry-after)', async () => {
    const gateway = await build();
    const replayed = await gateway.inject({
      method: 'GET',
      url: '/api/list/cluster/',
      headers: { authentication: 'replayed' },
    });
    expect(replayed.statusCode).toBe(401);
    expect(replayed.json().code).toBe('SHIFTER_AUTH_REPLAYED');
    const down = await gateway.inject({
      method: 'GET',
      url: '/api/list/cluster/',
      headers: { authentication: 'down' },
    });
    expect(down.statusCode).toBe(503);
    expect(down.headers['retry-after']).toBe('5');
  });

  it('answers an unknown system with 404 SHIFTER_SYSTEM_UNKNOWN', async () => {
    const gateway = await build();
    const response = await gateway.inject({
      method: 'GET',
      url: '/api/list/systemc/',
      headers: { authentication: 'alice:1' },
    });
    expect(response.statusCode).toBe(404);
    expect(response.json().code).toBe('SHIFTER_SYSTEM_UNKNOWN');
  });

  it('answers 403 for a non-admin expire', async () => {
    const gateway = await build();
    const response = await gateway.inject({
      method: 'GET',
      url: '/api/expire/cluster/docker/busybox/',
      headers: { authentication: 'alice:1000' },
    });
    expect(response.statusCode).toBe(403);
    const admin = await gateway.inject({
      method: 'GET',
      url: '/api/expire/cluster/docker/busybox/',
      headers: { authentication: 'root:0' },
    });
    expect(admin.json()).toEqual({ status: true });
  });
});

describe('buildApp: routes', () => {
  it('passes URL-escaped tags with slashes and colons to the service and returns upstream fields', async () => {
    const gateway = await build();
    const response = await gateway.inject({
      method: 'GET',
      url: '/api/lookup/cluster/docker/127.0.0.1%3A5000%2Ftest%2Fbusybox%3Alatest/',
      headers: { authentication: 'alice:1000' },
    });
    expect(response.statusCode).toBe(200);
    expect(calls[0]?.args.slice(0, 3)).toEqual(['cluster', 'docker', '127.0.0.1:5000/test/busybox:latest']);
    expect(Object.keys(response.json()).sort()).toEqual(
      [
        'ENTRY',
        'ENV',
        'LABELS',
        'WORKDIR',
        'groupACL',
        'id',
        'itype',
        'last_pull',
        'status',
        'status_message',
        'system',
        'tag',
        'userACL',
      ].sort(),
    );
    expect(response.json()).toMatchObject({ last_pull: 1_700_000_000, ENV: ['PATH=/bin'], LABELS: { a: 'b' } });
    // Upstream's client reads last_pull as a double; a whole second is still written with its fraction.
    expect(response.body).toContain('"last_pull":1700000000.0,');
  });

  it('answers a lookup of a frozen (store-cached) record with the same bytes and headers as of any other record', async () => {
    const frozen = Object.freeze(record({ tags: Object.freeze(['frozen:1']), env: Object.freeze(['A=1', 'B="q"']) }));
    const plain = record({ tags: ['frozen:1'], env: ['A=1', 'B="q"'] });
    let next: ImageRecord = frozen;
    const gateway = await buildApp({
      config,
      service: { ...service, lookup: async () => next },
      authenticator,
      defaultMetrics: false,
    });
    app = gateway;
    const get = () =>
      gateway.inject({
        method: 'GET',
        url: '/api/lookup/cluster/docker/frozen%3A1/',
        headers: { authentication: 'alice:1000' },
      });
    const first = await get();
    const second = await get();
    next = plain;
    const unfrozen = await get();
    expect(first.body).toBe(upstreamJson(toImageResponse(plain)));
    for (const response of [second, unfrozen]) {
      expect(response.statusCode).toBe(200);
      expect(response.body).toBe(first.body);
      expect(response.headers['content-type']).toBe('application/json');
      expect(response.headers['content-length']).toBe(first.headers['content-length']);
    }
    const list = await gateway.inject({
      method: 'GET',
      url: '/api/list/cluster/',
      headers: { authentication: 'alice:1000' },
    });
    expect(list.headers['content-type']).toBe(first.headers['content-type']);
  });

  it('reads upstream comma-separated ACLs whatever the content type and shows progress in status_message', async () => {
    const gateway = await build();
    const response = await gateway.inject({
      method: 'POST',
      url: '/api/pull/cluster/docker/busybox/',
      headers: { authentication: 'alice:1000', 'content-type': 'application/x-www-form-urlencoded' },
      payload: JSON.stringify({ allowed_uids: '1000,1001', allowed_gids: '1002,1003' }),
    });
    expect(response.statusCode).toBe(200);
    expect(calls[0]?.args[4]).toEqual({ allowedUids: [1000, 1001], allowedGids: [1002, 1003] });
    expect(response.json()).toMatchObject({
      status: 'PULLING',
      id: 'MISSING',
      ENTRY: 'MISSING',
      status_message: 'Pulling layer 1/2 sha256:aa 2.0 KiB / 4.0 KiB',
    });
  });

  it('accepts a pull without a body', async () => {
    const gateway = await build();
    const response = await gateway.inject({
      method: 'POST',
      url: '/api/pull/cluster/docker/busybox/',
      headers: { authentication: 'a:1', 'content-type': 'application/json' },
    });
    expect(response.statusCode).toBe(200);
  });

  it('gives hostile bodies their 4xx: malformed JSON 400, bad ACL 400, oversized 413', async () => {
    const gateway = await build();
    const headers = { authentication: 'alice:1000', 'content-type': 'application/json' };
    const malformed = await gateway.inject({
      method: 'POST',
      url: '/api/pull/cluster/docker/busybox/',
      headers,
      payload: '{"allowed_uids": ',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().code).toBe('SHIFTER_USAGE_INVALID_ARGUMENT');
    const badAcl = await gateway.inject({
      method: 'POST',
      url: '/api/pull/cluster/docker/busybox/',
      headers,
      payload: { allowed_uids: 'root; rm -rf /' },
    });
    expect(badAcl.statusCode).toBe(400);
    expect(badAcl.json().details.issues[0].path).toBe('allowed_uids');
    const huge = await gateway.inject({
      method: 'POST',
      url: '/api/pull/cluster/docker/busybox/',
      headers,
      payload: { allowed_uids: '1,'.repeat(2000) },
    });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().code).toBe('SHIFTER_REQUEST_TOO_LARGE');
    const proto = await gateway.inject({
      method: 'POST',
      url: '/api/pull/cluster/docker/busybox/',
      headers,
      payload: '{"__proto__": {"polluted": 1}}',
    });
    expect(proto.statusCode).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('hides internal error messages and never answers a client error with 5xx', async () => {
    const gateway = await build();
    const internal = await gateway.inject({
      method: 'GET',
      url: '/api/lookup/cluster/docker/boom/',
      headers: { authentication: 'a:1' },
    });
    expect(internal.statusCode).toBe(500);
    expect(internal.body).not.toContain('secret');
    const unknownRoute = await gateway.inject({ method: 'GET', url: '/api/nope' });
    expect(unknownRoute.statusCode).toBe(404);
    expect(unknownRoute.json().code).toBe('SHIFTER_ROUTE_NOT_FOUND');
    const wrongMethod = await gateway.inject({ method: 'DELETE', url: '/api/status' });
    expect(wrongMethod.statusCode).toBe(405);
    expect(wrongMethod.json()).toMatchObject({ code: 'SHIFTER_METHOD_NOT_ALLOWED' });
    const missing = await gateway.inject({
      method: 'GET',
      url: '/api/lookup/cluster/docker/missing%3Alatest/',
      headers: { authentication: 'a:1' },
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ status: 404, code: 'SHIFTER_IMAGE_NOT_FOUND', message: 'no such image' });
  });

  it('returns metrics rows in upstream shape and queue entries', async () => {
    const gateway = await build();
    const metrics = await gateway.inject({
      method: 'GET',
      url: '/api/metrics/cluster/?limit=20',
      headers: { authentication: 'root:0' },
    });
    expect(metrics.json()).toEqual([
      { user: 'u', uid: 1, system: 'cluster', type: 'docker', tag: 't', id: 'i', time: 2 },
    ]);
    const badLimit = await gateway.inject({
      method: 'GET',
      url: '/api/metrics/cluster/?limit=-3',
      headers: { authentication: 'root:0' },
    });
    expect(badLimit.statusCode).toBe(400);
    const queue = await gateway.inject({
      method: 'GET',
      url: '/api/queue/cluster/',
      headers: { authentication: 'a:1' },
    });
    expect(queue.json()).toEqual({ list: [{ status: 'PULLING', image: 'busybox:latest', status_message: 'x' }] });
  });
});

void ShifterError;
