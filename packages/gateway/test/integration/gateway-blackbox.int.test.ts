/**
 * Black-box tests of `shifter-gateway serve` against the real test registry, munged, the local image directory and,
 * for the distributed backend, FerretDB + Redis. They carry the meaning of upstream's imagegwapi/imagemngr tests
 * (docs/upstream-differences.md lists every status code that changed on purpose).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { haveRoot, haveServices, makeLayer, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  pullUntilDone,
  pushImage,
  startGatewayProcess,
  tempDir,
  type GatewayProcess,
} from './gateway-process.js';

const ready = haveServices('registry', 'munge', 'user') && haveRoot();
const distributed = ready && haveServices('mongo', 'redis');

const backends = [
  { name: 'embedded (SQLite + in-process)', enabled: ready, distributed: false },
  { name: 'distributed (FerretDB + Redis)', enabled: distributed, distributed: true },
];

const SYSTEM = 'cluster';

for (const backend of backends) {
  describe.skipIf(!backend.enabled)(`gateway black box: ${backend.name}`, () => {
    let dir: string;
    let imageDir: string;
    let gateway: GatewayProcess;
    let registry: string;
    const user = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
    const asUser = () => mungeCredential({ user });
    const asRoot = () => mungeCredential();
    let tag: string;
    let config: Record<string, unknown>;

    beforeAll(async () => {
      registry = serviceValue('registry');
      tag = `${registry}/test/busybox:latest`;
      dir = tempDir('shifter-gw-it-');
      chmodSync(dir, 0o755);
      imageDir = join(dir, 'images');
      mkdirSync(imageDir);
      const run = `${process.pid}${Date.now().toString(36)}`;
      config = {
        gateway: { host: '127.0.0.1', port: await freePort(), bodyLimit: 4096 },
        storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
        systems: { [SYSTEM]: { transfer: { kind: 'local', imageDir }, admins: ['root'], importUsers: [user] } },
        // The harness registry is no configured location (allowedRegistries defaults to "configured").
        allowedRegistries: 'any',
        metadata: backend.distributed
          ? { kind: 'mongo', url: serviceValue('mongo'), database: `gw${run}` }
          : { kind: 'sqlite', path: join(dir, 'gateway.db') },
        queue: backend.distributed
          ? { kind: 'redis', url: serviceValue('redis'), prefix: `gw${run}` }
          : { kind: 'in-process', concurrency: 2 },
        jobs: { pullUpdateTimeout: 300, imageExpirationTimeout: '0:00:00:03', leaseMs: 10_000, heartbeatMs: 2000 },
        metrics: true,
        conversion: { compression: 'lz4' },
      };
      gateway = await startGatewayProcess(config, { dir, args: backend.distributed ? ['--with-workers'] : [] });
    });

    afterAll(async () => {
      await gateway?.stop();
    });

    it('needs no credentials for status, OpenAPI and /metrics, and shows no image data there', async () => {
      const status = await call(gateway.url, 'GET', '/api/status');
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({ status: 'up', systems: [SYSTEM] });
      expect((await call(gateway.url, 'GET', '/api/openapi.json')).status).toBe(200);
      const metrics = await fetch(`${gateway.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).not.toContain('busybox');
    });

    it('test_pull: pulls a registry image to READY, writes <id>.squashfs and <id>.meta, public image without ACLs', async () => {
      const answer = await pullUntilDone(gateway.url, SYSTEM, tag, asUser, 240_000, {
        allowed_uids: '1000,1001',
        allowed_gids: '1002,1003',
      });
      expect(answer.status).toBe(200);
      expect(answer.body.status, JSON.stringify(answer.body)).toBe('READY');
      expect(answer.body.id).toMatch(/^[0-9a-f]{64}$/);
      // Public image: ACLs are cleared, as upstream does for images that needed no registry credentials.
      expect(answer.body).toMatchObject({ userACL: [], groupACL: [], itype: 'docker', system: SYSTEM });
      expect(answer.body.tag).toContain(tag);
      const files = readdirSync(imageDir).sort();
      expect(files).toEqual([`${answer.body.id}.meta`, `${answer.body.id}.squashfs`]);
      expect(statSync(join(imageDir, `${answer.body.id}.squashfs`)).mode & 0o777).toBe(0o644);
      execFileSync('unsquashfs', ['-l', join(imageDir, `${answer.body.id}.squashfs`)]);
      expect(readFileSync(join(imageDir, `${answer.body.id}.meta`), 'utf8')).toContain('FORMAT: squashfs');
    });

    it('test_pulllookup / test_lookup: lookup after pull answers 200, a bogus tag 404', async () => {
      const found = await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
        credential: await asUser(),
      });
      expect(found.status).toBe(200);
      expect(found.body.status).toBe('READY');
      const bogus = await call(
        gateway.url,
        'GET',
        `/api/lookup/${SYSTEM}/docker/${encodeURIComponent(`${registry}/test/nothere:1`)}/`,
        { credential: await asUser() },
      );
      expect(bogus.status).toBe(404);
      expect(bogus.body).toMatchObject({ status: 404, code: 'SHIFTER_IMAGE_NOT_FOUND' });
    });

    it('50 concurrent pulls of one tag share one record and one job', async () => {
      const whiteout = `${registry}/test/whiteout:latest`;
      const credentials = await Promise.all(Array.from({ length: 50 }, () => asUser()));
      const answers = await Promise.all(
        credentials.map((credential) =>
          call(gateway.url, 'POST', `/api/pull/${SYSTEM}/docker/${encodeURIComponent(whiteout)}/`, { credential }),
        ),
      );
      expect(answers.every((answer) => answer.status === 200)).toBe(true);
      // One record: every answer carries the same creation time of the pull.
      expect(new Set(answers.map((answer) => answer.body.last_pull)).size).toBe(1);
      const done = await pullUntilDone(gateway.url, SYSTEM, whiteout, asUser);
      expect(done.body.status).toBe('READY');
      const queue = await call(gateway.url, 'GET', `/api/queue/${SYSTEM}/`, { credential: await asUser() });
      expect(queue.body.list.filter((entry: { image: string }) => entry.image === whiteout)).toEqual([]);
    });

    it('re-POSTs of a READY tag are answered from the store quickly', async () => {
      const started = Date.now();
      const answer = await call(gateway.url, 'POST', `/api/pull/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
        credential: await asUser(),
      });
      expect(answer.body.status).toBe('READY');
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('test_list: lists the image; an unknown system is 404', async () => {
      const list = await call(gateway.url, 'GET', `/api/list/${SYSTEM}/`, { credential: await asUser() });
      expect(list.status).toBe(200);
      expect(list.body.list.some((image: { tag: string[] }) => image.tag.includes(tag))).toBe(true);
      const unknown = await call(gateway.url, 'GET', '/api/list/systemc/', { credential: await asUser() });
      expect(unknown.status).toBe(404);
      expect(unknown.body.code).toBe('SHIFTER_SYSTEM_UNKNOWN');
    });

    it('test_queue: answers 200 with credentials and 401 without (upstream left it open)', async () => {
      expect((await call(gateway.url, 'GET', `/api/queue/${SYSTEM}/`, { credential: await asUser() })).status).toBe(
        200,
      );
      expect((await call(gateway.url, 'GET', `/api/queue/${SYSTEM}/`)).status).toBe(401);
    });

    it('an unknown tag ends in FAILURE with the registry code', async () => {
      const answer = await pullUntilDone(gateway.url, SYSTEM, `${registry}/test/busybox:doesnotexist`, asUser, 60_000);
      expect(answer.body.status).toBe('FAILURE');
      expect(answer.body.code).toMatch(/^SHIFTER_REGISTRY_(MANIFEST|NAME)_UNKNOWN$/);
      expect(answer.body.status_message).toContain(answer.body.code);
    });

    it('a hostile image (a layer entry escaping the root) ends in FAILURE with the layer code, nothing delivered', async () => {
      const hostile = `test/hostile-${backend.distributed ? 'd' : 'e'}${process.pid}`;
      await pushImage(
        registry,
        hostile,
        'latest',
        await makeLayer([{ path: 'etc/' }, { path: '../../../tmp/escaped', content: 'x' }]),
      );
      const before = readdirSync(imageDir).length;
      const answer = await pullUntilDone(gateway.url, SYSTEM, `${registry}/${hostile}:latest`, asUser, 60_000);
      expect(answer.body.status).toBe('FAILURE');
      expect(answer.body.code).toBe('SHIFTER_LAYER_UNSAFE_PATH');
      expect(readdirSync(imageDir).length).toBe(before);
    });

    it('hostile input: malformed and traversal tags 400, bad ACL 400, oversized body 413, unknown route 404', async () => {
      for (const bad of ['..%2F..%2Fetc%2Fpasswd', 'UPPER%2F..%2Fx', 'a%20b', '%00']) {
        const answer = await call(gateway.url, 'POST', `/api/pull/${SYSTEM}/docker/${bad}/`, {
          credential: await asUser(),
        });
        expect(answer.status, bad).toBe(400);
        expect(answer.body.code).toMatch(/^SHIFTER_(REF_INVALID|USAGE_INVALID_ARGUMENT)$/);
      }
      const acl = await call(gateway.url, 'POST', `/api/pull/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
        credential: await asUser(),
        body: { allowed_uids: 'root' },
      });
      expect(acl.status).toBe(400);
      const huge = await call(gateway.url, 'POST', `/api/pull/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
        credential: await asUser(),
        body: { allowed_uids: '1,'.repeat(4000) },
      });
      expect(huge.status).toBe(413);
      expect((await call(gateway.url, 'GET', '/api/../../etc/passwd')).status).toBe(404);
    });

    it('bad munge credentials: missing, forged, replayed and expired are 401 with their codes', async () => {
      const path = `/api/lookup/${SYSTEM}/docker/${encodeURIComponent(tag)}/`;
      expect((await call(gateway.url, 'GET', path)).body.code).toBe('SHIFTER_AUTH_REQUIRED');
      const good = await asUser();
      const forged = `${good.slice(0, 40)}${good.slice(40, 60).split('').reverse().join('')}${good.slice(60)}`;
      const forgedAnswer = await call(gateway.url, 'GET', path, { credential: forged });
      expect(forgedAnswer.status).toBe(401);
      expect(forgedAnswer.body.code).toBe('SHIFTER_AUTH_INVALID');
      expect((await call(gateway.url, 'GET', path, { credential: good })).status).toBe(200);
      const replayed = await call(gateway.url, 'GET', path, { credential: good });
      expect(replayed.status).toBe(401);
      expect(replayed.body.code).toBe('SHIFTER_AUTH_REPLAYED');
      const shortLived = await mungeCredential({ user, ttl: 1 });
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const expired = await call(gateway.url, 'GET', path, { credential: shortLived });
      expect(expired.status).toBe(401);
      expect(expired.body.code).toBe('SHIFTER_AUTH_EXPIRED');
      expect((await call(gateway.url, 'GET', path, { credential: 'garbage' })).status).toBe(401);
    });

    it('test_metrics: admins read the last N lookups, newest last; others get 403 (upstream: empty list)', async () => {
      for (let i = 0; i < 4; i++) {
        await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
          credential: await asUser(),
        });
      }
      const rows = await call(gateway.url, 'GET', `/api/metrics/${SYSTEM}/?limit=3`, { credential: await asRoot() });
      expect(rows.status).toBe(200);
      expect(rows.body).toHaveLength(3);
      expect(rows.body[2].time).toBeGreaterThanOrEqual(rows.body[0].time);
      expect(rows.body[0]).toMatchObject({ user, system: SYSTEM, type: 'docker', tag });
      expect((await call(gateway.url, 'GET', `/api/metrics/${SYSTEM}/`, { credential: await asUser() })).status).toBe(
        403,
      );
    });

    it('test_import: imports a squashfs the caller owns; id is its sha256', async () => {
      const source = join(dir, 'import-src');
      mkdirSync(join(source, 'etc'), { recursive: true });
      writeFileSync(join(source, 'etc', 'hello'), 'hello from an import\n');
      const file = join(dir, 'mine.squashfs');
      execFileSync('mksquashfs', [source, file, '-noappend', '-quiet', '-no-progress', '-all-root']);
      const uid = Number(execFileSync('id', ['-u', user]).toString());
      chownSync(file, uid, uid);
      chmodSync(file, 0o600);
      const expected = createHash('sha256').update(readFileSync(file)).digest('hex');
      const started = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/mine/`, {
        credential: await asUser(),
        body: { filepath: file, format: 'squashfs' },
      });
      expect(started.status).toBe(200);
      let answer = started;
      for (let i = 0; i < 120 && !['READY', 'FAILURE'].includes(answer.body.status); i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        answer = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/mine/`, {
          credential: await asUser(),
          body: { filepath: file },
        });
      }
      const lookup = await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/custom/mine/`, {
        credential: await asUser(),
      });
      expect(lookup.body.status, JSON.stringify(answer.body)).toBe('READY');
      expect(lookup.body.id).toBe(expected);
      expect(existsSync(join(imageDir, `${expected}.squashfs`))).toBe(true);

      // Root may not import a file as the test user cannot read: checked as the caller.
      const secret = join(dir, 'secret.squashfs');
      execFileSync('mksquashfs', [source, secret, '-noappend', '-quiet', '-no-progress', '-all-root', '-comp', 'lz4']);
      chmodSync(secret, 0o600);
      await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/secret/`, {
        credential: await asUser(),
        body: { filepath: secret },
      });
      let refused = { status: 0, body: { status: 'PENDING' } } as { status: number; body: any };
      for (let i = 0; i < 120 && !['READY', 'FAILURE'].includes(refused.body.status); i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        refused = await call(gateway.url, 'POST', `/api/doimport/${SYSTEM}/custom/secret/`, {
          credential: await asUser(),
          body: { filepath: secret },
        });
      }
      expect(refused.body.status).toBe('FAILURE');
      expect(refused.body.code).toBe('SHIFTER_IMPORT_INVALID');
    });

    it('test_expire: non-admins get 403 and the image stays; an admin expires it and its files go', async () => {
      const path = `/api/expire/${SYSTEM}/docker/${encodeURIComponent(tag)}/`;
      expect((await call(gateway.url, 'GET', path, { credential: await asUser() })).status).toBe(403);
      const image = await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
        credential: await asUser(),
      });
      expect(image.status).toBe(200);
      const expired = await call(gateway.url, 'GET', path, { credential: await asRoot() });
      expect(expired.body).toEqual({ status: true });
      // The .meta goes first, then the image: wait for both.
      const gone = () =>
        !existsSync(join(imageDir, `${image.body.id}.meta`)) &&
        !existsSync(join(imageDir, `${image.body.id}.squashfs`));
      for (let i = 0; i < 80 && !gone(); i++) await new Promise((resolve) => setTimeout(resolve, 250));
      expect(existsSync(join(imageDir, `${image.body.id}.meta`))).toBe(false);
      expect(existsSync(join(imageDir, `${image.body.id}.squashfs`))).toBe(false);
      expect(
        (
          await call(gateway.url, 'GET', `/api/lookup/${SYSTEM}/docker/${encodeURIComponent(tag)}/`, {
            credential: await asUser(),
          })
        ).status,
      ).toBe(404);
    });

    it('test_autoexpire: an image unused past its expiration is expired by an admin autoexpire', async () => {
      const other = `${registry}/test/busybox:v2s2`;
      const pulled = await pullUntilDone(gateway.url, SYSTEM, other, asUser);
      expect(pulled.body.status).toBe('READY');
      expect(
        (await call(gateway.url, 'GET', `/api/autoexpire/${SYSTEM}/`, { credential: await asUser() })).status,
      ).toBe(403);
      await new Promise((resolve) => setTimeout(resolve, 3500));
      const answer = await call(gateway.url, 'GET', `/api/autoexpire/${SYSTEM}/`, { credential: await asRoot() });
      expect(answer.status).toBe(200);
      expect(answer.body.status).toContain(pulled.body.id);
      for (let i = 0; i < 80 && existsSync(join(imageDir, `${pulled.body.id}.squashfs`)); i++)
        await new Promise((resolve) => setTimeout(resolve, 250));
      expect(existsSync(join(imageDir, `${pulled.body.id}.squashfs`))).toBe(false);
    });
  });
}
