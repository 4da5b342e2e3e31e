import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockAgent, type MockPool } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../blob-store/index.js';
import { MediaType } from '../manifest/index.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';

const REG = 'https://reg.example.org';
const sha = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function makeImage(arch = 'amd64') {
  const layer = Buffer.from(`layer bytes for ${arch} `.repeat(50));
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [sha('x')] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: MediaType.OCI_CONFIG, digest: sha(config), size: config.length },
      layers: [{ mediaType: MediaType.OCI_LAYER_GZIP, digest: sha(layer), size: layer.length }],
    }),
  );
  return { layer, config, manifest, manifestDigest: sha(manifest) };
}

type Headers = Record<string, string>;
interface Seen {
  path: string;
  headers: Headers;
}

function lowerHeaders(headers: unknown): Headers {
  const out: Headers = {};
  if (Array.isArray(headers))
    for (let i = 0; i < headers.length; i += 2) out[String(headers[i]).toLowerCase()] = String(headers[i + 1]);
  else if (headers && typeof headers === 'object')
    for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = String(v);
  return out;
}

describe('RegistryClient (MockAgent)', () => {
  let agent: MockAgent;
  let pool: MockPool;
  let seen: Seen[];
  let dir: string;
  /** The clients' clock: time only moves when a test moves it; waits are recorded, never spent. */
  let clock: { ms: number; sleeps: number[] };

  beforeEach(async () => {
    clock = { ms: Date.parse('2026-01-01T00:00:00Z'), sleeps: [] };
    agent = new MockAgent();
    agent.disableNetConnect();
    pool = agent.get(REG);
    seen = [];
    dir = await mkdtemp(join(tmpdir(), 'shifter-reg-'));
  });
  afterEach(async () => {
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  });

  const client = (options: Partial<RegistryClientOptions> = {}) =>
    new RegistryClient({
      dispatcher: agent,
      retry: { baseDelayMs: 1, maxDelayMs: 2 },
      now: () => clock.ms,
      sleep: async (ms) => {
        clock.sleeps.push(ms);
        clock.ms += ms;
      },
      ...options,
    });

  /** Serve the image anonymously at test/app:latest. */
  function serveImage(
    image: ReturnType<typeof makeImage>,
    options: { auth?: (headers: Headers) => boolean; contentType?: string } = {},
  ) {
    const guard =
      (path: string, status: number, data: Buffer | string, headers: Headers = {}) =>
      (request: { headers?: unknown }) => {
        const h = lowerHeaders(request.headers);
        seen.push({ path, headers: h });
        if (options.auth && !options.auth(h)) {
          return {
            statusCode: 401,
            data: JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }),
            responseOptions: {
              headers: {
                'www-authenticate':
                  'Bearer realm="https://auth.example.org/token",service="reg",scope="repository:test/app:pull"',
              },
            },
          };
        }
        return { statusCode: status, data, responseOptions: { headers } };
      };
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply(guard('manifest', 200, image.manifest, { 'content-type': options.contentType ?? MediaType.OCI_MANIFEST }))
      .persist();
    pool
      .intercept({ path: `/v2/test/app/blobs/${sha(image.config)}`, method: 'GET' })
      .reply(guard('config', 200, image.config))
      .persist();
    pool
      .intercept({ path: `/v2/test/app/blobs/${sha(image.layer)}`, method: 'GET' })
      .reply(guard('layer', 200, image.layer))
      .persist();
  }

  it('resolves an anonymous OCI image and fetches its layer into the store', async () => {
    const image = makeImage();
    serveImage(image);
    const registry = client();
    const resolved = await registry.resolveImage(`reg.example.org/test/app`);
    expect(resolved.manifestDigest).toBe(image.manifestDigest);
    expect(resolved.id).toBe(image.manifestDigest.slice(7));
    expect(resolved.manifestMediaType).toBe(MediaType.OCI_MANIFEST);
    expect(resolved.config.config?.Cmd).toEqual(['/bin/sh']);
    expect(resolved.usedCredentials).toBe(false);
    expect(await registry.resolveDigest('reg.example.org/test/app')).toEqual({
      reference: resolved.reference,
      manifestDigest: image.manifestDigest,
      id: resolved.id,
      usedCredentials: false,
    });
    expect(seen[0]!.headers.accept).toContain(MediaType.OCI_INDEX);
    expect(seen[0]!.headers.accept).toContain(MediaType.DOCKER_MANIFEST_LIST);
    expect(seen[0]!.headers.authorization).toBeUndefined();
    const store = new FsBlobStore(dir, { fsync: false });
    const progress: number[] = [];
    const fetched = await registry.fetchBlob(resolved.reference, resolved.layers[0]!, store, {
      onProgress: (p) => progress.push(p.receivedBytes),
    });
    expect(fetched).toMatchObject({ cached: false, size: image.layer.length });
    expect(progress.at(-1)).toBe(image.layer.length);
    expect(await registry.fetchBlob(resolved.reference, resolved.layers[0]!, store)).toMatchObject({ cached: true });
    await registry.close();
  });

  it('verifies the manifest digest of a digest reference against the bytes received', async () => {
    const image = makeImage();
    const wrong = sha('something else');
    pool.intercept({ path: `/v2/test/app/manifests/${wrong}`, method: 'GET' }).reply(200, image.manifest, {
      headers: { 'content-type': MediaType.OCI_MANIFEST, 'docker-content-digest': wrong },
    });
    await expect(client().resolveImage(`reg.example.org/test/app@${wrong}`)).rejects.toMatchObject({
      code: 'SHIFTER_DIGEST_MISMATCH',
    });
  });

  it('caps manifest size before parsing', async () => {
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply(200, Buffer.alloc(2048, 0x20), { headers: { 'content-type': MediaType.OCI_MANIFEST } });
    await expect(
      client({ limits: { maxManifestBytes: 1024 } }).resolveImage('reg.example.org/test/app'),
    ).rejects.toMatchObject({ code: 'SHIFTER_SIZE_LIMIT' });
  });

  it('refuses a config blob that does not match its descriptor', async () => {
    const image = makeImage();
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply(200, image.manifest, { headers: { 'content-type': MediaType.OCI_MANIFEST } });
    const tampered = Buffer.from(image.config);
    tampered[2] = 0x41;
    pool.intercept({ path: `/v2/test/app/blobs/${sha(image.config)}`, method: 'GET' }).reply(200, tampered);
    await expect(client().resolveImage('reg.example.org/test/app')).rejects.toMatchObject({
      code: 'SHIFTER_DIGEST_MISMATCH',
    });
  });

  it('selects the platform from an index and checks the entry size', async () => {
    const amd = makeImage('amd64');
    const arm = makeImage('arm64');
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCI_INDEX,
        manifests: [
          {
            mediaType: MediaType.OCI_MANIFEST,
            digest: amd.manifestDigest,
            size: amd.manifest.length,
            platform: { os: 'linux', architecture: 'amd64' },
          },
          {
            mediaType: MediaType.OCI_MANIFEST,
            digest: arm.manifestDigest,
            size: arm.manifest.length,
            platform: { os: 'linux', architecture: 'arm64' },
          },
        ],
      }),
    );
    pool
      .intercept({ path: '/v2/test/app/manifests/multi', method: 'GET' })
      .reply(200, index, { headers: { 'content-type': MediaType.OCI_INDEX } })
      .persist();
    for (const image of [amd, arm]) {
      pool
        .intercept({ path: `/v2/test/app/manifests/${image.manifestDigest}`, method: 'GET' })
        .reply(200, image.manifest, { headers: { 'content-type': MediaType.OCI_MANIFEST } });
      pool.intercept({ path: `/v2/test/app/blobs/${sha(image.config)}`, method: 'GET' }).reply(200, image.config);
    }
    const registry = client();
    const resolvedArm = await registry.resolveImage('reg.example.org/test/app:multi', {
      platform: { os: 'linux', architecture: 'arm64' },
    });
    expect(resolvedArm.manifestDigest).toBe(arm.manifestDigest);
    expect(resolvedArm.indexDigest).toBe(sha(index));
    expect(resolvedArm.config.architecture).toBe('arm64');
    const cheap = await registry.resolveDigest('reg.example.org/test/app:multi', {
      platform: { os: 'linux', architecture: 'arm64' },
    });
    expect(cheap).toMatchObject({
      manifestDigest: arm.manifestDigest,
      id: arm.manifestDigest.slice(7),
      indexDigest: sha(index),
      usedCredentials: false,
    });
    const resolvedAmd = await registry.resolveImage('reg.example.org/test/app:multi');
    expect(resolvedAmd.id).toBe(amd.manifestDigest.slice(7));
    await expect(
      registry.resolveImage('reg.example.org/test/app:multi', { platform: { os: 'linux', architecture: 's390x' } }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_PLATFORM_NOT_FOUND',
      details: { available: ['linux/amd64', 'linux/arm64'] },
    });
  });

  it('maps an unknown tag to SHIFTER_REGISTRY_MANIFEST_UNKNOWN keeping the registry status', async () => {
    pool
      .intercept({ path: '/v2/test/app/manifests/nope', method: 'GET' })
      .reply(404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    await expect(client().resolveImage('reg.example.org/test/app:nope')).rejects.toMatchObject({
      code: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN',
      registryStatus: 404,
    });
  });

  describe('bearer tokens', () => {
    let tokenRequests: Headers[];
    let tokenQueries: string[];
    let tokenCounter: number;
    beforeEach(() => {
      tokenRequests = [];
      tokenQueries = [];
      tokenCounter = 0;
    });
    function serveTokens(options: { expiresIn?: number; requireCredentials?: boolean } = {}) {
      agent
        .get('https://auth.example.org')
        .intercept({ path: (p: string) => p.startsWith('/token'), method: 'GET' })
        .reply((request: { headers?: unknown; path: string }) => {
          const h = lowerHeaders(request.headers);
          tokenRequests.push(h);
          tokenQueries.push(request.path);
          const withCredentials = h.authorization === `Basic ${Buffer.from('alice:s3cret,:x').toString('base64')}`;
          if (options.requireCredentials && !withCredentials && h.authorization)
            return { statusCode: 401, data: '{"details":"bad credentials"}' };
          tokenCounter += 1;
          const token = `${withCredentials ? 'full' : 'anon'}-${tokenCounter}`;
          return {
            statusCode: 200,
            data: JSON.stringify({
              [tokenCounter % 2 ? 'token' : 'access_token']: token,
              ...(options.expiresIn ? { expires_in: options.expiresIn } : {}),
            }),
          };
        })
        .persist();
    }

    it('follows the challenge, requests the scope, and caches the token', async () => {
      const image = makeImage();
      serveTokens();
      serveImage(image, { auth: (h) => /^Bearer (anon|full)-\d+$/.test(h.authorization ?? '') });
      const registry = client();
      const resolved = await registry.resolveImage('reg.example.org/test/app');
      expect(resolved.usedCredentials).toBe(false);
      expect(tokenQueries).toEqual(['/token?service=reg&scope=repository%3Atest%2Fapp%3Apull']);
      expect(tokenRequests[0]!.authorization).toBeUndefined();
      await registry.fetchBlob(resolved.reference, resolved.layers[0]!, new FsBlobStore(dir, { fsync: false }));
      expect(registry.tokensIssued).toBe(1);
    });

    it('keeps a token until a quarter of its lifetime (at most 5 s) before it expires, on the injected clock', async () => {
      const image = makeImage();
      serveTokens({ expiresIn: 60 });
      serveImage(image, { auth: (h) => /^Bearer /.test(h.authorization ?? '') });
      const registry = client();
      await registry.resolveDigest('reg.example.org/test/app');
      expect(registry.tokensIssued).toBe(1);
      clock.ms += 54_999; // 60 s token, 5 s margin: still good
      await registry.resolveDigest('reg.example.org/test/app');
      expect(registry.tokensIssued).toBe(1);
      clock.ms += 1; // now inside the margin: refreshed before the request is sent
      await registry.resolveDigest('reg.example.org/test/app');
      expect(registry.tokensIssued).toBe(2);
      expect(seen.at(-1)!.headers.authorization).toBe('Bearer anon-2');
    });

    it('refreshes an expired token before the next request', async () => {
      const image = makeImage();
      serveTokens({ expiresIn: 1 });
      serveImage(image, { auth: (h) => /^Bearer /.test(h.authorization ?? '') });
      const registry = client();
      const resolved = await registry.resolveImage('reg.example.org/test/app');
      clock.ms += 1_100;
      await registry.fetchBlob(resolved.reference, resolved.layers[0]!, new FsBlobStore(dir, { fsync: false }));
      expect(registry.tokensIssued).toBe(2);
      expect(seen.at(-1)!.headers.authorization).toBe('Bearer anon-2');
    });

    it('refreshes once when the registry rejects a token mid-pull', async () => {
      const image = makeImage();
      serveTokens();
      // Only the newest token is valid, as when a registry revokes or expires tokens early.
      serveImage(image, { auth: (h) => h.authorization === `Bearer anon-${tokenCounter}` });
      const registry = client();
      const resolved = await registry.resolveImage('reg.example.org/test/app');
      tokenCounter += 1; // invalidates the cached token
      await registry.fetchBlob(resolved.reference, resolved.layers[0]!, new FsBlobStore(dir, { fsync: false }));
      expect(registry.tokensIssued).toBe(2);
    });

    it('uses credentials when the anonymous token lacks access, and reports it', async () => {
      const image = makeImage();
      serveTokens();
      serveImage(image, { auth: (h) => /^Bearer full-/.test(h.authorization ?? '') });
      const registry = client({
        credentials: (host) => (host === 'reg.example.org' ? { username: 'alice', password: 's3cret,:x' } : undefined),
      });
      const resolved = await registry.resolveImage('reg.example.org/test/app');
      expect(resolved.usedCredentials).toBe(true);
      expect(tokenRequests.map((h) => h.authorization === undefined)).toEqual([true, false]);
    });

    it('fails with SHIFTER_REGISTRY_AUTH_FAILED when access needs credentials nobody gave', async () => {
      const image = makeImage();
      serveTokens();
      serveImage(image, { auth: (h) => /^Bearer full-/.test(h.authorization ?? '') });
      await expect(client().resolveImage('reg.example.org/test/app')).rejects.toMatchObject({
        code: 'SHIFTER_REGISTRY_AUTH_FAILED',
        registryStatus: 401,
      });
    });
  });

  it('sends Basic credentials when the registry asks for them', async () => {
    const image = makeImage();
    const expected = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply((request: { headers?: unknown }) => {
        const h = lowerHeaders(request.headers);
        seen.push({ path: 'manifest', headers: h });
        return h.authorization === expected
          ? {
              statusCode: 200,
              data: image.manifest,
              responseOptions: { headers: { 'content-type': MediaType.OCI_MANIFEST } },
            }
          : {
              statusCode: 401,
              data: '',
              responseOptions: { headers: { 'www-authenticate': 'Basic realm="Registry Realm"' } },
            };
      })
      .persist();
    pool.intercept({ path: `/v2/test/app/blobs/${sha(image.config)}`, method: 'GET' }).reply(200, image.config);
    const resolved = await client({ credentials: () => ({ username: 'bob', password: 'pw' }) }).resolveImage(
      'reg.example.org/test/app',
    );
    expect(resolved.usedCredentials).toBe(true);
    expect(seen.map((s) => s.headers.authorization)).toEqual([undefined, expected]);
    await expect(client().resolveImage('reg.example.org/test/app')).rejects.toMatchObject({
      code: 'SHIFTER_REGISTRY_AUTH_FAILED',
    });
  });

  it('retries 429 honouring Retry-After and 503 with backoff', async () => {
    const image = makeImage();
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply(429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow' }] }, { headers: { 'retry-after': '1' } });
    pool.intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' }).reply(503, 'busy');
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply(200, image.manifest, { headers: { 'content-type': MediaType.OCI_MANIFEST } });
    pool.intercept({ path: `/v2/test/app/blobs/${sha(image.config)}`, method: 'GET' }).reply(200, image.config);
    const resolved = await client().resolveImage('reg.example.org/test/app');
    expect(resolved.manifestDigest).toBe(image.manifestDigest);
    // Retry-After: 1 → one second; then the 503 → the policy's backoff (at most maxDelayMs).
    expect(clock.sleeps).toHaveLength(2);
    expect(clock.sleeps[0]).toBe(1_000);
    expect(clock.sleeps[1]).toBeLessThanOrEqual(2);
  });

  it('gives up after the bounded attempts and fails at once on an excessive Retry-After', async () => {
    pool.intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' }).reply(503, 'busy').times(3);
    await expect(
      client({ retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 } }).resolveImage('reg.example.org/test/app'),
    ).rejects.toMatchObject({
      code: 'SHIFTER_REGISTRY_UNAVAILABLE',
      retryable: true,
      registryStatus: 503,
    });
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply(429, '', { headers: { 'retry-after': '3600' } });
    await expect(client().resolveImage('reg.example.org/test/app')).rejects.toMatchObject({
      code: 'SHIFTER_REGISTRY_RATE_LIMITED',
    });
  });

  it('follows a blob redirect to another host without the registry Authorization', async () => {
    const image = makeImage();
    serveTokensSimple();
    pool
      .intercept({ path: '/v2/test/app/manifests/latest', method: 'GET' })
      .reply((request: { headers?: unknown }) =>
        lowerHeaders(request.headers).authorization
          ? {
              statusCode: 200,
              data: image.manifest,
              responseOptions: { headers: { 'content-type': MediaType.OCI_MANIFEST } },
            }
          : {
              statusCode: 401,
              data: '',
              responseOptions: {
                headers: { 'www-authenticate': 'Bearer realm="https://auth.example.org/token",service="reg"' },
              },
            },
      )
      .persist();
    for (const blob of [image.config, image.layer]) {
      pool
        .intercept({ path: `/v2/test/app/blobs/${sha(blob)}`, method: 'GET' })
        .reply(307, '', { headers: { location: `https://cdn.example.net/blobs/${sha(blob).slice(7)}?sig=abc` } });
      agent
        .get('https://cdn.example.net')
        .intercept({ path: `/blobs/${sha(blob).slice(7)}?sig=abc`, method: 'GET' })
        .reply((request: { headers?: unknown }) => {
          seen.push({ path: 'cdn', headers: lowerHeaders(request.headers) });
          return { statusCode: 200, data: blob };
        });
    }
    const registry = client();
    const resolved = await registry.resolveImage('reg.example.org/test/app');
    await registry.fetchBlob(resolved.reference, resolved.layers[0]!, new FsBlobStore(dir, { fsync: false }));
    const cdn = seen.filter((s) => s.path === 'cdn');
    expect(cdn).toHaveLength(2);
    for (const request of cdn) expect(request.headers.authorization).toBeUndefined();

    function serveTokensSimple() {
      agent
        .get('https://auth.example.org')
        .intercept({ path: (p: string) => p.startsWith('/token'), method: 'GET' })
        .reply(200, { token: 't' })
        .persist();
    }
  });

  it('reports a missing blob with SHIFTER_REGISTRY_BLOB_UNKNOWN and stores nothing', async () => {
    const image = makeImage();
    pool
      .intercept({ path: `/v2/test/app/blobs/${sha(image.layer)}`, method: 'GET' })
      .reply(404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] });
    const registry = client();
    const store = new FsBlobStore(dir, { fsync: false });
    const reference = registry.parseReference('reg.example.org/test/app');
    await expect(
      registry.fetchBlob(reference, { digest: sha(image.layer), size: image.layer.length }, store),
    ).rejects.toMatchObject({ code: 'SHIFTER_REGISTRY_BLOB_UNKNOWN' });
    expect(await store.has(sha(image.layer))).toBe(false);
  });

  it('refuses a blob whose bytes do not match, leaving the store empty', async () => {
    const image = makeImage();
    pool
      .intercept({ path: `/v2/test/app/blobs/${sha(image.layer)}`, method: 'GET' })
      .reply(200, Buffer.from('evil bytes'));
    const registry = client();
    const store = new FsBlobStore(dir, { fsync: false });
    const reference = registry.parseReference('reg.example.org/test/app');
    await expect(
      registry.fetchBlob(reference, { digest: sha(image.layer), size: image.layer.length }, store),
    ).rejects.toMatchObject({ code: 'SHIFTER_DIGEST_MISMATCH' });
    expect(await store.has(sha(image.layer))).toBe(false);
  });

  it('resolves configured locations and refuses insecure ones', async () => {
    const image = makeImage();
    serveImage(image);
    const registry = client({ registries: { site: { url: REG } }, defaultLocation: 'site' });
    expect((await registry.resolveImage('test/app')).reference.location).toBe('site');
    expect((await registry.resolveImage('site/test/app')).reference.registry).toBe('reg.example.org');
    await expect(
      client({ registries: { lab: { url: 'http://lab.example.org' } } }).resolveImage('lab/test/app'),
    ).rejects.toMatchObject({ code: 'SHIFTER_REGISTRY_INSECURE_REFUSED' });
  });

  it('validates its options', () => {
    expect(() => new RegistryClient({ retry: { attempts: 0 } })).toThrow(
      expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }),
    );
    expect(() => new RegistryClient({ limits: { maxManifestBytes: -1 } })).toThrow(
      expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }),
    );
  });
});
