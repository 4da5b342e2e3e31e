/**
 * The test harness itself (scripts/test-harness.sh): every service the other integration tests rely on is really up
 * and behaves as docs/testing.md promises. When one of these fails, fix the harness before reading other failures.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { haveServices, serviceValue } from '@shifter/core/testing';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ');

/** The fixture tags every registry holds, with the media type each must be served as. */
const SMALL_TAGS: [repo: string, tag: string, mediaType: string][] = [
  ['test/busybox', 'latest', OCI_MANIFEST],
  ['test/busybox', 'v2s2', DOCKER_MANIFEST],
  ['test/whiteout', 'latest', OCI_MANIFEST],
  ['test/multiarch', 'latest', OCI_INDEX],
  ['test/multiarch', 'list', DOCKER_LIST],
  ['test/weird', 'latest', OCI_MANIFEST],
];
/** Only on the plain registry. */
const LARGE_TAGS: [string, string, string][] = [
  ['test/big', 'latest', OCI_MANIFEST],
  ['test/debian', 'latest', OCI_MANIFEST],
];

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run scripts/test-harness.sh start and load .state/harness.env)`);
  return value;
};

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function get(url: string, headers: Record<string, string> = {}, dispatcher?: Agent): Promise<Reply> {
  const res = await request(url, { headers, ...(dispatcher ? { dispatcher } : {}) });
  const body = await res.body.text();
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : String(v ?? '');
  return { status: res.statusCode, headers: flat, body };
}

const basicHeader = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Parses `Bearer realm="…",service="…",scope="…"` into its parameters. */
function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!] = m[2]!;
  return { scheme: header.slice(0, space), params };
}

describe.skipIf(!haveServices('registry', 'registryBasic', 'registryToken', 'fixtures'))('harness registries', () => {
  let tls: Agent;
  let user: string;
  let password: string;
  let tokenServer: string;

  beforeAll(() => {
    tls = new Agent({ connect: { ca: readFileSync(env('SHIFTER_TEST_CA_FILE')) } });
    user = env('SHIFTER_TEST_REGISTRY_USER');
    password = env('SHIFTER_TEST_REGISTRY_PASSWORD');
    tokenServer = env('SHIFTER_TEST_TOKEN_SERVER');
  });
  afterAll(async () => {
    await tls?.close();
  });

  async function token(scope: string, credentials?: [string, string]): Promise<Reply> {
    const url = `${tokenServer}/token?service=shifter-test-registry&scope=${encodeURIComponent(scope)}`;
    return get(url, credentials ? { authorization: basicHeader(...credentials) } : {});
  }

  async function bearer(scope: string, credentials?: [string, string]): Promise<Record<string, string>> {
    const reply = await token(scope, credentials);
    expect(reply.status).toBe(200);
    return { authorization: `Bearer ${(JSON.parse(reply.body) as { token: string }).token}` };
  }

  /** How to read a manifest from each registry: base URL, auth headers for a repository, TLS dispatcher. */
  const registries = {
    plain: { base: () => `http://${serviceValue('registry')}`, auth: async () => ({}), dispatcher: () => undefined },
    basic: {
      base: () => `https://${serviceValue('registryBasic')}`,
      auth: async () => ({ authorization: basicHeader(user, password) }),
      dispatcher: () => tls,
    },
    token: {
      base: () => `http://${serviceValue('registryToken')}`,
      auth: async (repo: string) => bearer(`repository:${repo}:pull`),
      dispatcher: () => undefined,
    },
  } as const;

  it('plain registry answers /v2/ anonymously over HTTP', async () => {
    const reply = await get(`http://${serviceValue('registry')}/v2/`);
    expect(reply.status).toBe(200);
    expect(reply.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('basic registry speaks TLS with the harness CA and challenges with Basic', async () => {
    const base = `https://${serviceValue('registryBasic')}`;
    const anonymous = await get(`${base}/v2/`, {}, tls);
    expect(anonymous.status).toBe(401);
    expect(parseChallenge(anonymous.headers['www-authenticate']!).scheme).toBe('Basic');
    expect((await get(`${base}/v2/`, { authorization: basicHeader(user, 'wrong') }, tls)).status).toBe(401);
    expect((await get(`${base}/v2/`, { authorization: basicHeader(user, password) }, tls)).status).toBe(200);
    // Without the CA the certificate must be refused: TLS verification is real.
    await expect(request(`${base}/v2/`)).rejects.toThrow();
  });

  it('token registry challenges with Bearer naming the token server, service and scope', async () => {
    const base = `http://${serviceValue('registryToken')}`;
    const root = await get(`${base}/v2/`);
    expect(root.status).toBe(401);
    const challenge = parseChallenge(root.headers['www-authenticate']!);
    expect(challenge.scheme).toBe('Bearer');
    expect(challenge.params.realm).toBe(`${tokenServer}/token`);
    expect(challenge.params.service).toBe('shifter-test-registry');

    const tags = await get(`${base}/v2/test/busybox/tags/list`);
    expect(tags.status).toBe(401);
    expect(parseChallenge(tags.headers['www-authenticate']!).params.scope).toBe('repository:test/busybox:pull');
  });

  it('token server: anonymous pull of test/*, credentials for private/*, refusal of bad credentials', async () => {
    const base = `http://${serviceValue('registryToken')}`;
    const before = JSON.parse((await get(`${tokenServer}/stats`)).body) as { issued: number };

    const anonymous = await token('repository:test/busybox:pull');
    expect(anonymous.status).toBe(200);
    const body = JSON.parse(anonymous.body) as { token: string; access_token: string; expires_in: number };
    expect(body.expires_in).toBe(Number(env('SHIFTER_TEST_TOKEN_TTL')));
    expect(body.access_token).toBe(body.token);
    const [header, claims] = body.token
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
    expect(header.alg).toBe('RS256');
    expect(header.x5c).toHaveLength(1);
    expect(claims.access).toEqual([{ type: 'repository', name: 'test/busybox', actions: ['pull'] }]);
    const tags = await get(`${base}/v2/test/busybox/tags/list`, { authorization: `Bearer ${body.token}` });
    expect(tags.status).toBe(200);
    expect(JSON.parse(tags.body).tags).toContain('latest');

    // Anonymous clients get a token without the private scope: the registry refuses it.
    const denied = await get(`${base}/v2/private/busybox/tags/list`, await bearer('repository:private/busybox:pull'));
    expect(denied.status).toBe(401);
    const allowed = await get(`${base}/v2/private/busybox/manifests/latest`, {
      accept: ACCEPT,
      ...(await bearer('repository:private/busybox:pull', [user, password])),
    });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['content-type']).toBe(OCI_MANIFEST);

    const refused = await token('repository:private/busybox:pull', [user, 'wrong']);
    expect(refused.status).toBe(401);

    const after = JSON.parse((await get(`${tokenServer}/stats`)).body) as { issued: number };
    expect(after.issued - before.issued).toBeGreaterThanOrEqual(3);
  });

  it('token expires for the registry after SHIFTER_TEST_TOKEN_TTL seconds', async () => {
    const ttl = Number(env('SHIFTER_TEST_TOKEN_TTL'));
    expect(ttl).toBeLessThanOrEqual(30);
    const base = `http://${serviceValue('registryToken')}`;
    const auth = await bearer('repository:test/busybox:pull');
    expect((await get(`${base}/v2/test/busybox/tags/list`, auth)).status).toBe(200);
    await new Promise((r) => setTimeout(r, (ttl + 1.5) * 1000));
    const expired = await get(`${base}/v2/test/busybox/tags/list`, auth);
    expect(expired.status).toBe(401);
  }, 60_000);

  for (const name of ['plain', 'basic', 'token'] as const) {
    it(`${name} registry serves every small fixture with its media type`, async () => {
      const r = registries[name];
      for (const [repo, tag, mediaType] of SMALL_TAGS) {
        const reply = await get(
          `${r.base()}/v2/${repo}/manifests/${tag}`,
          { accept: ACCEPT, ...(await r.auth(repo)) },
          r.dispatcher(),
        );
        expect(reply.status, `${name} ${repo}:${tag}`).toBe(200);
        expect(reply.headers['content-type'], `${name} ${repo}:${tag}`).toBe(mediaType);
        const manifest = JSON.parse(reply.body) as { manifests?: { platform: { architecture: string } }[] };
        if (mediaType === OCI_INDEX || mediaType === DOCKER_LIST) {
          expect(manifest.manifests?.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
        }
      }
    });
  }

  it('plain registry holds the big and debian fixtures; the others do not', async () => {
    for (const [repo, tag, mediaType] of LARGE_TAGS) {
      const reply = await get(`${registries.plain.base()}/v2/${repo}/manifests/${tag}`, { accept: ACCEPT });
      expect(reply.status, `${repo}:${tag}`).toBe(200);
      expect(reply.headers['content-type']).toBe(mediaType);
      const manifest = JSON.parse(reply.body) as { layers: { size: number }[] };
      if (repo === 'test/big') expect(manifest.layers.length).toBeGreaterThanOrEqual(4);
      if (repo === 'test/debian') expect(manifest.layers).toHaveLength(2);
    }
    const basic = await get(
      `${registries.basic.base()}/v2/test/big/manifests/latest`,
      { accept: ACCEPT, ...(await registries.basic.auth()) },
      tls,
    );
    expect(basic.status).toBe(404);
  });

  it('fixture layouts hold the contracted tags, readable by the unprivileged test user', async () => {
    const dir = serviceValue('fixtures');
    const expected: Record<string, string[]> = {
      busybox: ['latest', 'v2s2'],
      whiteout: ['latest'],
      multiarch: ['latest', 'list', 'amd64', 'arm64'],
      weird: ['latest'],
      big: ['latest'],
      debian: ['latest'],
    };
    for (const [name, tags] of Object.entries(expected)) {
      const index = JSON.parse(await readFile(join(dir, name, 'index.json'), 'utf8')) as {
        manifests: { annotations?: Record<string, string> }[];
      };
      const refs = index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
      for (const tag of tags) expect(refs, `${name}:${tag}`).toContain(tag);
      const layout = await stat(join(dir, name, 'oci-layout'));
      expect(layout.mode & 0o004, `${name} layout world-readable`).toBe(0o004);
    }
  });
});

describe.skipIf(!haveServices('mongo'))('harness MongoDB (FerretDB)', () => {
  it('answers ping and does a CRUD round trip', async () => {
    const client = new MongoClient(serviceValue('mongo'), { serverSelectionTimeoutMS: 5000 });
    try {
      await client.connect();
      expect((await client.db('admin').command({ ping: 1 })).ok).toBe(1);
      const coll = client.db('harness_check').collection<{ _id: string; n: number }>(`c${process.pid}`);
      await coll.insertOne({ _id: 'a', n: 1 });
      await coll.updateOne({ _id: 'a' }, { $inc: { n: 1 } });
      expect(await coll.findOne({ _id: 'a' })).toEqual({ _id: 'a', n: 2 });
      await coll.drop();
    } finally {
      await client.close();
    }
  });
});

describe.skipIf(!haveServices('mongoPg'))('harness MongoDB (FerretDB on PostgreSQL)', () => {
  it('does a CRUD round trip, and plans its queries in PostgreSQL', async () => {
    const client = new MongoClient(serviceValue('mongoPg'), { serverSelectionTimeoutMS: 5000 });
    try {
      await client.connect();
      const db = client.db('harness_check');
      const coll = db.collection<{ _id: string; n: number }>(`c${process.pid}`);
      await coll.insertOne({ _id: 'a', n: 1 });
      await coll.updateOne({ _id: 'a' }, { $inc: { n: 1 } });
      expect(await coll.findOne({ _id: 'a' })).toEqual({ _id: 'a', n: 2 });
      // FerretDB answers explain with its backend's plan: PostgreSQL's EXPLAIN (FORMAT JSON) has "Node Type".
      const explained = await db.command({ explain: { find: coll.collectionName, filter: { n: 2 } } });
      expect(explained.queryPlanner?.Plan?.['Node Type']).toEqual(expect.any(String));
      await coll.drop();
    } finally {
      await client.close();
    }
  });
});

describe.skipIf(!haveServices('redis'))('harness Redis', () => {
  it('answers PING', async () => {
    const redis = new Redis(serviceValue('redis'), { maxRetriesPerRequest: 1, lazyConnect: true });
    try {
      await redis.connect();
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
    }
  });
});

describe.skipIf(!haveServices('munge'))('harness munged', () => {
  it('round-trips a credential carrying a payload', async () => {
    const socket = serviceValue('munge');
    const payload = `harness-${process.pid}`;
    const { stdout: credential } = await run('munge', ['-S', socket, '-s', payload]);
    expect(credential).toMatch(/^MUNGE:/);
    const child = execFile('unmunge', ['-S', socket]);
    child.stdin!.end(credential);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(out).toMatch(/STATUS:\s+Success \(0\)/);
    expect(out).toContain(payload);
    expect(out).toMatch(new RegExp(`UID:\\s+\\S+ \\(${process.getuid!()}\\)`));
  });
});

describe.skipIf(!haveServices('user'))('harness users', () => {
  it('creates both test users with their fixed uids and own groups', async () => {
    for (const [name, uid] of [
      [serviceValue('user'), 2001],
      [env('SHIFTER_TEST_USER2'), 2002],
    ] as const) {
      const { stdout } = await run('id', [name]);
      expect(stdout).toContain(`uid=${uid}(${name})`);
      expect(stdout).toContain(`gid=${uid}(${name})`);
    }
  });
});
