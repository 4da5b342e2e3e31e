import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FsBlobStore,
  MediaType,
  RegistryClient,
  ShifterError,
  type RegistryClientOptions,
  type RegistryCredentials,
} from '@shifter/core';
import { haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

// The registry client against the harness's three real registries (plain HTTP, Basic auth + TLS, Bearer tokens)
// and every small fixture. Oracle: the fixture's OCI layout (what was pushed): layer digests of the chosen
// platform manifest and the blob bytes themselves. Faults (cut connections, 429, 503, tokens that die early)
// come from a small HTTP proxy in front of the real registries.

const enabled = haveServices('registry', 'registryBasic', 'registryToken', 'fixtures');

interface LayoutDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}

const FIXTURE_TAGS: Array<[string, string]> = [
  ['busybox', 'latest'],
  ['busybox', 'v2s2'],
  ['whiteout', 'latest'],
  ['multiarch', 'latest'],
  ['multiarch', 'list'],
  ['weird', 'latest'],
];

function layoutBlob(fixture: string, digest: string): Buffer {
  return readFileSync(join(serviceValue('fixtures'), fixture, 'blobs', ...digest.split(':')));
}

/** Layer digests of the linux/amd64 (or only) manifest of a fixture tag, read from its OCI layout. */
function expectedLayers(fixture: string, tag: string, architecture = 'amd64'): string[] {
  const index = JSON.parse(readFileSync(join(serviceValue('fixtures'), fixture, 'index.json'), 'utf8')) as {
    manifests: LayoutDescriptor[];
  };
  let descriptor = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!descriptor) throw new Error(`fixture ${fixture} has no tag ${tag}`);
  if (descriptor.mediaType === MediaType.OCI_INDEX) {
    const inner = JSON.parse(layoutBlob(fixture, descriptor.digest).toString()) as { manifests: LayoutDescriptor[] };
    descriptor = inner.manifests.find((m) => m.platform?.architecture === architecture);
    if (!descriptor) throw new Error(`fixture ${fixture}:${tag} has no ${architecture}`);
  }
  const manifest = JSON.parse(layoutBlob(fixture, descriptor.digest).toString()) as { layers: LayoutDescriptor[] };
  return manifest.layers.map((layer) => layer.digest);
}

const credentials = (): RegistryCredentials => ({
  username: process.env.SHIFTER_TEST_REGISTRY_USER ?? '',
  password: process.env.SHIFTER_TEST_REGISTRY_PASSWORD ?? '',
});

async function tokenStats(): Promise<number> {
  const response = await fetch(`${process.env.SHIFTER_TEST_TOKEN_SERVER}/stats`);
  return ((await response.json()) as { issued: number }).issued;
}

/** Fault-injecting proxy: forwards to a real registry (and token server), misbehaving as the test asks. */
class FaultProxy {
  readonly server: Server;
  /** Blob digests whose next response is cut after `cutAfterBytes`. */
  readonly cutOnce = new Set<string>();
  cutAfterBytes = 4096;
  /** Paths (prefix match) answered once with the given status and headers. */
  readonly failOnce: Array<{ prefix: string; status: number; headers?: Record<string, string> }> = [];
  /** Rewrite token answers to claim a one-hour lifetime (the real tokens still die after the server's TTL). */
  lieAboutTokenLifetime = false;
  readonly log: Array<{ path: string; range?: string; status: number }> = [];

  constructor(
    private readonly registry: string,
    private readonly tokenServer?: string,
  ) {
    this.server = createServer((request, response) => void this.handle(request, response));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = request.url ?? '/';
    const failure = this.failOnce.findIndex((f) => path.startsWith(f.prefix));
    if (failure !== -1) {
      const { status, headers } = this.failOnce.splice(failure, 1)[0]!;
      this.log.push({ path, status });
      response.writeHead(status, { 'content-type': 'application/json', ...headers });
      response.end(
        JSON.stringify({ errors: [{ code: status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected' }] }),
      );
      return;
    }
    const toTokenServer = this.tokenServer !== undefined && path.startsWith('/token');
    const target = toTokenServer ? new URL(this.tokenServer!) : new URL(`http://${this.registry}`);
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path,
        headers: { ...request.headers, host: target.host },
      },
      (answer) => void this.relay(path, request, answer, response, toTokenServer),
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  }

  private async relay(
    path: string,
    request: IncomingMessage,
    answer: IncomingMessage,
    response: ServerResponse,
    toTokenServer: boolean,
  ): Promise<void> {
    const headers = { ...answer.headers };
    this.log.push({
      path,
      ...(request.headers.range ? { range: request.headers.range } : {}),
      status: answer.statusCode ?? 0,
    });
    if (typeof headers['www-authenticate'] === 'string' && this.tokenServer) {
      // Point clients at the proxy's token endpoint so token answers can be rewritten.
      headers['www-authenticate'] = headers['www-authenticate'].replace(
        this.tokenServer,
        `http://${request.headers.host}`,
      );
    }
    if (toTokenServer && this.lieAboutTokenLifetime && answer.statusCode === 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of answer) chunks.push(chunk as Buffer);
      const body = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.concat(chunks).toString()), expires_in: 3600 }));
      delete headers['content-length'];
      response.writeHead(200, { ...headers, 'content-length': String(body.length) });
      response.end(body);
      return;
    }
    const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path)?.[1];
    if (digest && this.cutOnce.has(digest) && answer.statusCode === 200) {
      this.cutOnce.delete(digest);
      response.writeHead(200, headers);
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (sent >= this.cutAfterBytes) return;
        const part = chunk.subarray(0, this.cutAfterBytes - sent);
        sent += part.length;
        response.write(part);
        if (sent >= this.cutAfterBytes) {
          answer.destroy();
          // Let the bytes leave, then kill the connection mid-body.
          setTimeout(() => response.socket?.destroy(), 50);
        }
      });
      return;
    }
    response.writeHead(answer.statusCode ?? 502, headers);
    answer.pipe(response);
  }
}

describe.skipIf(!enabled)('registry client against the harness registries', () => {
  let cacheDir: string;
  let store: FsBlobStore;
  const clients: RegistryClient[] = [];
  const makeClient = (options: RegistryClientOptions = {}): RegistryClient => {
    const client = new RegistryClient({ retry: { baseDelayMs: 50, maxDelayMs: 200 }, ...options });
    clients.push(client);
    return client;
  };
  const basicRegistries = () => ({
    basic: { url: `https://${serviceValue('registryBasic')}`, caFile: process.env.SHIFTER_TEST_CA_FILE! },
  });

  beforeEach(() => {
    cacheDir = mkdtempSync(join(tmpdir(), 'shifter-registry-int-'));
    store = new FsBlobStore(cacheDir, { fsync: false });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
  });

  async function pullAll(client: RegistryClient, ref: string, fixture: string, tag: string) {
    const image = await client.resolveImage(ref);
    expect(image.layers.map((l) => l.digest)).toEqual(expectedLayers(fixture, tag));
    for (const layer of image.layers) {
      await client.fetchBlob(image.reference, layer, store);
      expect(readFileSync(store.path(layer.digest)).equals(layoutBlob(fixture, layer.digest))).toBe(true);
    }
    expect(image.id).toBe(image.manifestDigest.slice('sha256:'.length));
    return image;
  }

  describe('plain HTTP registry, every fixture', () => {
    it.each(FIXTURE_TAGS)('resolves and fetches test/%s:%s', async (fixture, tag) => {
      const image = await pullAll(makeClient(), `${serviceValue('registry')}/test/${fixture}:${tag}`, fixture, tag);
      expect(image.usedCredentials).toBe(false);
      if (tag === 'v2s2') expect(image.manifestMediaType).toBe(MediaType.DOCKER_MANIFEST);
      if (fixture === 'multiarch') expect(image.indexDigest).toMatch(/^sha256:/);
      rmSync(cacheDir, { recursive: true, force: true });
    });

    it('selects arm64 from the OCI index and from the Docker list', async () => {
      const client = makeClient();
      for (const tag of ['latest', 'list']) {
        const image = await client.resolveImage(`${serviceValue('registry')}/test/multiarch:${tag}`, {
          platform: { os: 'linux', architecture: 'arm64' },
        });
        expect(image.layers.map((l) => l.digest)).toEqual(expectedLayers('multiarch', 'latest', 'arm64'));
        expect(image.config.architecture).toBe('arm64');
      }
      await expect(
        client.resolveImage(`${serviceValue('registry')}/test/multiarch:latest`, {
          platform: { os: 'linux', architecture: 'riscv64' },
        }),
      ).rejects.toMatchObject({
        code: 'SHIFTER_PLATFORM_NOT_FOUND',
      });
    });

    it('pins a digest and refuses a wrong one', async () => {
      const client = makeClient();
      const byTag = await client.resolveImage(`${serviceValue('registry')}/test/busybox:latest`);
      const byDigest = await client.resolveImage(`${serviceValue('registry')}/test/busybox@${byTag.manifestDigest}`);
      expect(byDigest.id).toBe(byTag.id);
      const other = `sha256:${createHash('sha256').update('nothing').digest('hex')}`;
      await expect(client.resolveImage(`${serviceValue('registry')}/test/busybox@${other}`)).rejects.toMatchObject({
        code: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN',
      });
    });

    it('answers the API probe', async () => {
      expect(await makeClient().probe(`${serviceValue('registry')}/test/busybox`)).toEqual({
        status: 200,
        challenges: [],
      });
    });
  });

  describe('Basic auth + TLS registry', () => {
    it.each(FIXTURE_TAGS)('resolves and fetches test/%s:%s with credentials and the CA', async (fixture, tag) => {
      const client = makeClient({
        registries: basicRegistries(),
        credentials: (host) => (host === serviceValue('registryBasic') ? credentials() : undefined),
      });
      const image = await pullAll(client, `${serviceValue('registryBasic')}/test/${fixture}:${tag}`, fixture, tag);
      expect(image.usedCredentials).toBe(true);
    });

    it('works through the location prefix of the configuration', async () => {
      const client = makeClient({
        registries: basicRegistries(),
        credentials: (_host, location) => (location === 'basic' ? credentials() : undefined),
      });
      const image = await client.resolveImage('basic/test/busybox:latest');
      expect(image.reference).toMatchObject({
        registry: serviceValue('registryBasic'),
        location: 'basic',
        repository: 'test/busybox',
      });
    });

    it('fails without credentials, with wrong ones, and without the CA', async () => {
      await expect(
        makeClient({ registries: basicRegistries() }).resolveImage(
          `${serviceValue('registryBasic')}/test/busybox:latest`,
        ),
      ).rejects.toMatchObject({
        code: 'SHIFTER_REGISTRY_AUTH_FAILED',
        registryStatus: 401,
      });
      const wrong = makeClient({
        registries: basicRegistries(),
        credentials: () => ({ username: 'shifter', password: 'wrong' }),
      });
      await expect(wrong.resolveImage(`${serviceValue('registryBasic')}/test/busybox:latest`)).rejects.toMatchObject({
        code: 'SHIFTER_REGISTRY_AUTH_FAILED',
      });
      const noCa = makeClient({
        registries: { basic: { url: `https://${serviceValue('registryBasic')}` } },
        credentials,
      });
      const error = await noCa
        .resolveImage(`${serviceValue('registryBasic')}/test/busybox:latest`)
        .catch((e: unknown) => e);
      expect(ShifterError.isInstance(error)).toBe(true);
      expect(error).toMatchObject({
        code: 'SHIFTER_REGISTRY_UNAVAILABLE',
        retryable: false,
        message: expect.stringMatching(/TLS verification failed/),
      });
    });
  });

  describe('Bearer token registry', () => {
    const tokenRef = (path: string) => `${serviceValue('registryToken')}/${path}`;

    it.each(FIXTURE_TAGS)('resolves and fetches test/%s:%s anonymously', async (fixture, tag) => {
      const client = makeClient();
      const image = await pullAll(client, tokenRef(`test/${fixture}:${tag}`), fixture, tag);
      expect(image.usedCredentials).toBe(false);
      expect(client.tokensIssued).toBeGreaterThanOrEqual(1);
    });

    it('pulls private/busybox with credentials and reports that they were needed', async () => {
      const client = makeClient({ credentials });
      const image = await pullAll(client, tokenRef('private/busybox:latest'), 'busybox', 'latest');
      expect(image.usedCredentials).toBe(true);
      const cheap = await makeClient({ credentials }).resolveDigest(tokenRef('private/busybox:latest'));
      expect(cheap).toMatchObject({ manifestDigest: image.manifestDigest, id: image.id, usedCredentials: true });
      const list = await makeClient().resolveDigest(tokenRef('test/multiarch:list'), {
        platform: { os: 'linux', architecture: 'arm64' },
      });
      expect(list.indexDigest).toMatch(/^sha256:/);
      expect(
        (
          await makeClient().resolveImage(tokenRef('test/multiarch:list'), {
            platform: { os: 'linux', architecture: 'arm64' },
          })
        ).id,
      ).toBe(list.id);
    });

    it('refuses private/busybox without credentials', async () => {
      const error = await makeClient()
        .resolveImage(tokenRef('private/busybox:latest'))
        .catch((e: unknown) => e);
      expect(['SHIFTER_REGISTRY_AUTH_FAILED', 'SHIFTER_REGISTRY_DENIED']).toContain((error as ShifterError).code);
    });

    it('reports an unknown tag on every registry as SHIFTER_REGISTRY_MANIFEST_UNKNOWN', async () => {
      for (const [client, ref] of [
        [makeClient(), `${serviceValue('registry')}/test/busybox:no-such-tag`],
        [
          makeClient({ registries: basicRegistries(), credentials }),
          `${serviceValue('registryBasic')}/test/busybox:no-such-tag`,
        ],
        [makeClient(), tokenRef('test/busybox:no-such-tag')],
      ] as const) {
        await expect(client.resolveImage(ref)).rejects.toMatchObject({
          code: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN',
          registryStatus: 404,
        });
      }
    });

    it('refreshes an expired token before continuing a pull', async () => {
      const ttl = Number(process.env.SHIFTER_TEST_TOKEN_TTL ?? 5);
      const client = makeClient();
      const image = await client.resolveImage(tokenRef('test/whiteout:latest'));
      const issuedBefore = await tokenStats();
      const tokensBefore = client.tokensIssued;
      await new Promise((resolve) => setTimeout(resolve, (ttl + 1) * 1000));
      for (const layer of image.layers) await client.fetchBlob(image.reference, layer, store);
      expect(client.tokensIssued).toBeGreaterThan(tokensBefore);
      expect(await tokenStats()).toBeGreaterThan(issuedBefore);
    });

    it('recovers when the registry rejects a token mid-pull (401) by fetching a new one', async () => {
      const ttl = Number(process.env.SHIFTER_TEST_TOKEN_TTL ?? 5);
      const proxy = new FaultProxy(serviceValue('registryToken'), process.env.SHIFTER_TEST_TOKEN_SERVER);
      proxy.lieAboutTokenLifetime = true; // the client trusts its token for an hour; the registry does not
      const address = await proxy.listen();
      try {
        const client = makeClient();
        const image = await client.resolveImage(`${address}/test/whiteout:latest`);
        expect(client.tokensIssued).toBe(1);
        const issuedBefore = await tokenStats();
        await new Promise((resolve) => setTimeout(resolve, (ttl + 1) * 1000));
        for (const layer of image.layers) await client.fetchBlob(image.reference, layer, store);
        for (const layer of image.layers) expect(await store.has(layer.digest)).toBe(true);
        expect(proxy.log.some((entry) => entry.path.includes('/blobs/') && entry.status === 401)).toBe(true);
        expect(client.tokensIssued).toBe(2);
        expect(await tokenStats()).toBe(issuedBefore + 1);
      } finally {
        await proxy.close();
      }
    }, 60_000);
  });

  it('reaches a registry through an explicitly configured proxy (CONNECT tunnel)', async () => {
    // The proxy resolves the made-up host itself, as a site proxy would resolve names the compute nodes cannot.
    const tunnels: string[] = [];
    const proxy = createServer();
    proxy.on('connect', (request: IncomingMessage, client, head: Buffer) => {
      tunnels.push(request.url ?? '');
      const [host, port] = serviceValue('registry').split(':');
      const upstream = connect(Number(port), host!, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const viaProxy = makeClient({
        registries: { site: { url: 'http://registry.shifter.test:5000', insecure: true } },
        proxy: { httpProxy: proxyUrl },
      });
      const image = await pullAll(viaProxy, 'site/test/busybox:latest', 'busybox', 'latest');
      expect(image.reference.registry).toBe('registry.shifter.test:5000');
      expect(tunnels.length).toBeGreaterThan(0);
      expect(new Set(tunnels)).toEqual(new Set(['registry.shifter.test:5000']));
      const bypass = makeClient({
        registries: { site: { url: 'http://registry.shifter.test:5000', insecure: true } },
        proxy: { httpProxy: proxyUrl, noProxy: '.shifter.test' },
      });
      await expect(bypass.resolveImage('site/test/busybox:latest')).rejects.toMatchObject({
        code: 'SHIFTER_REGISTRY_UNAVAILABLE',
      });
    } finally {
      proxy.close();
    }
  });

  describe('faults between client and registry', () => {
    let proxy: FaultProxy;
    let address: string;
    beforeAll(async () => {
      proxy = new FaultProxy(serviceValue('registry'));
      address = await proxy.listen();
    });
    afterAll(async () => {
      await proxy.close();
    });

    it('resumes a blob cut mid-transfer with Range and keeps the digest state', async () => {
      const client = makeClient();
      const image = await client.resolveImage(`${address}/test/busybox:latest`);
      const layer = image.layers.reduce((a, b) => (a.size >= b.size ? a : b));
      expect(layer.size).toBeGreaterThan(100_000);
      proxy.cutAfterBytes = 64 * 1024;
      proxy.cutOnce.add(layer.digest);
      const resumes: number[] = [];
      await client.fetchBlob(image.reference, layer, store, { onProgress: (p) => resumes.push(p.resumes) });
      expect(Math.max(...resumes)).toBe(1);
      const ranged = proxy.log.filter((entry) => entry.path.endsWith(layer.digest) && entry.range);
      expect(ranged).toEqual([
        { path: expect.stringContaining(layer.digest), range: `bytes=${64 * 1024}-`, status: 206 },
      ]);
      expect(readFileSync(store.path(layer.digest)).equals(layoutBlob('busybox', layer.digest))).toBe(true);
    });

    it('retries 429 honouring Retry-After and 503 with backoff', async () => {
      const client = makeClient();
      proxy.failOnce.push({ prefix: '/v2/test/whiteout/manifests/', status: 429, headers: { 'retry-after': '1' } });
      proxy.failOnce.push({ prefix: '/v2/test/whiteout/blobs/', status: 503 });
      const started = Date.now();
      const image = await client.resolveImage(`${address}/test/whiteout:latest`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      for (const layer of image.layers) await client.fetchBlob(image.reference, layer, store);
      const injected = proxy.log.filter((entry) => entry.status === 429 || entry.status === 503);
      expect(injected.map((entry) => entry.status).sort()).toEqual([429, 503]);
      expect(proxy.failOnce).toEqual([]);
    });

    it('gives up with a retryable error when the registry keeps failing', async () => {
      const client = makeClient({ retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } });
      proxy.failOnce.push(
        { prefix: '/v2/test/weird/manifests/', status: 503 },
        { prefix: '/v2/test/weird/manifests/', status: 503 },
      );
      await expect(client.resolveImage(`${address}/test/weird:latest`)).rejects.toMatchObject({
        code: 'SHIFTER_REGISTRY_UNAVAILABLE',
        retryable: true,
        registryStatus: 503,
      });
    });
  });
});
