/**
 * The lookup cache of the distributed deployment, end to end: two `serve` processes (A runs the workers, B only
 * answers) share FerretDB on PostgreSQL and Redis; each keeps lookups in memory. Changes made through A — an import
 * made visible to another user, a tag moved to other content and made private, an expiry — must reach the lookups
 * of B (itself two processes, `serve --processes 2`), whose cache TTL is set to an hour here so that only the
 * invalidations over Redis can explain it. Two real
 * users with real munge credentials; the other user never sees the private image through B's cache.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  startGatewayProcess,
  tempDir,
  type GatewayProcess,
} from './gateway-process.js';

const ready = haveServices('mongoPg', 'redis', 'munge', 'user') && haveRoot();
const SYSTEM = 'cluster';
const IN_FLIGHT = ['INIT', 'PENDING', 'PULLING', 'EXAMINATION', 'CONVERSION', 'TRANSFER', 'HASHING'];
/** Longest any change may take to show on B; far below the cache TTL of the test config. */
const DEADLINE = { timeout: 20_000, interval: 50 };

describe.skipIf(!ready)('lookup cache across two serve instances (FerretDB on PostgreSQL + Redis)', () => {
  const owner = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
  const other = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
  const run = `${process.pid}${randomBytes(3).toString('hex')}`;
  const database = `shifter_cache_${run}`;
  let ownerUid: number;
  let otherUid: number;
  let dir: string;
  let a: GatewayProcess | undefined;
  let b: GatewayProcess | undefined;

  const as = (user?: string) => () => mungeCredential(user ? { user } : {});
  const asOwner = () => as(owner)();
  const asOther = () => as(other)();
  const path = (kind: string, tag: string) => `/api/${kind}/${SYSTEM}/custom/${encodeURIComponent(tag)}/`;
  const lookup = async (gateway: GatewayProcess, credential: () => Promise<string>, tag: string) =>
    call(gateway.url, 'GET', path('lookup', tag), { credential: await credential() });

  /** A squashfs file of `content`, owned by `user` and readable only by them. */
  function squashfsOf(name: string, content: string, user: string, uid: number): string {
    const source = join(dir, `src-${name}`);
    mkdirSync(join(source, 'etc'), { recursive: true });
    writeFileSync(join(source, 'etc', 'hello'), content);
    const file = join(dir, `${name}.squashfs`);
    execFileSync('mksquashfs', [source, file, '-noappend', '-quiet', '-no-progress', '-all-root']);
    const copy = `${file}.${user}`;
    copyFileSync(file, copy);
    chownSync(copy, uid, uid);
    chmodSync(copy, 0o600);
    return copy;
  }

  /** Import through A until it leaves the working states. */
  async function importThroughA(tag: string, body: Record<string, unknown>) {
    for (let i = 0; i < 480; i++) {
      const answer = await call(a!.url, 'POST', path('doimport', tag), { credential: await asOwner(), body });
      if (answer.status !== 200 || !IN_FLIGHT.includes(answer.body.status)) return answer;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`import of ${tag} did not finish:\n${a!.output().slice(-2000)}`);
  }

  beforeAll(async () => {
    ownerUid = Number(execFileSync('id', ['-u', owner]).toString());
    otherUid = Number(execFileSync('id', ['-u', other]).toString());
    dir = tempDir('shifter-gw-cache-');
    chmodSync(dir, 0o755);
    const config = (port: number) => ({
      gateway: { host: '127.0.0.1', port, instances: 2 },
      storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
      metadata: { kind: 'mongo', url: serviceValue('mongoPg'), database, lookupCacheMs: 3_600_000 },
      queue: { kind: 'redis', url: serviceValue('redis'), prefix: `cache-${run}` },
      systems: {
        [SYSTEM]: { transfer: { kind: 'local', imageDir: join(dir, 'images') }, admins: ['root'] },
      },
      importUsers: 'all',
      // A repeated import of the same file runs again after a second (step 2 changes its ACL that way).
      jobs: { pullUpdateTimeout: 1 },
      conversion: { compression: 'lz4' },
    });
    a = await startGatewayProcess(config(await freePort()), { dir, name: 'a', args: ['--with-workers'] });
    // B is two processes itself (serve --processes 2): each has its own cache, and both must follow A's writes.
    b = await startGatewayProcess(config(await freePort()), { dir, name: 'b', args: ['--processes', '2'] });
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    const client = new MongoClient(serviceValue('mongoPg'));
    try {
      await client.connect();
      await client.db(database).dropDatabase();
    } finally {
      await client.close();
    }
  });

  it('runs serve --processes 2 as two serve processes under one supervisor', () => {
    const children = execFileSync('pgrep', ['-P', String(b!.child.pid)])
      .toString()
      .trim()
      .split('\n');
    expect(children).toHaveLength(2);
  });

  it('refuses serve --processes 2 on the embedded store', async () => {
    const embedded = {
      gateway: { host: '127.0.0.1', port: await freePort() },
      metadata: { kind: 'sqlite', path: join(dir, 'embedded.db') },
      systems: { [SYSTEM]: { transfer: { kind: 'local', imageDir: join(dir, 'images') } } },
    };
    await expect(startGatewayProcess(embedded, { dir, name: 'embedded', args: ['--processes', '2'] })).rejects.toThrow(
      /SHIFTER_CONFIG_INVALID/,
    );
  });

  it('shows visibility changes, a moved tag and an expiry made through A to the lookups of B', async () => {
    const tag = `private-${run}`;
    const first = squashfsOf('first', `first ${run}\n`, owner, ownerUid);
    // 1. A private import: the owner sees it through B (now cached there), the other user never does.
    const imported = await importThroughA(tag, { filepath: first, allowed_uids: String(ownerUid) });
    expect(imported.body.status, JSON.stringify(imported.body)).toBe('READY');
    const firstId = imported.body.id as string;
    await vi.waitFor(async () => expect((await lookup(b!, asOwner, tag)).body.id).toBe(firstId), DEADLINE);
    for (let i = 0; i < 3; i++) {
      expect((await lookup(b!, asOwner, tag)).status).toBe(200);
      const hostile = await lookup(b!, asOther, tag);
      expect(hostile.status).toBe(404);
      expect(JSON.stringify(hostile.body)).not.toContain(firstId);
    }
    const listed = await call(b!.url, 'GET', `/api/list/${SYSTEM}/`, { credential: await asOther() });
    expect(JSON.stringify(listed.body)).not.toContain(firstId);

    // 2. Made visible to the other user (the import again, naming both): B shows it to them.
    await vi.waitFor(async () => {
      const again = await importThroughA(tag, {
        filepath: first,
        allowed_uids: `${ownerUid},${otherUid}`,
      });
      expect(again.status).toBe(200);
      expect((await lookup(b!, asOther, tag)).body).toMatchObject({ status: 'READY', id: firstId });
    }, DEADLINE);

    // 3. The tag moved to other content, private to the owner again: B follows the tag and hides it again.
    const second = squashfsOf('second', `second ${run}\n`, owner, ownerUid);
    // (Re-posted: within pullUpdateTimeout of the last import the gateway answers with the image it has.)
    let secondId = firstId;
    await vi.waitFor(async () => {
      const moved = await importThroughA(tag, { filepath: second, allowed_uids: String(ownerUid) });
      expect(moved.body.status, JSON.stringify(moved.body)).toBe('READY');
      secondId = moved.body.id as string;
      expect(secondId).not.toBe(firstId);
    }, DEADLINE);
    await vi.waitFor(async () => expect((await lookup(b!, asOwner, tag)).body.id).toBe(secondId), DEADLINE);
    await vi.waitFor(async () => expect((await lookup(b!, asOther, tag)).status).toBe(404), DEADLINE);

    // 4. Expired by an admin (root) through A: gone from B for everyone.
    const expired = await call(a!.url, 'GET', path('expire', tag), { credential: await as()() });
    expect(expired.status, JSON.stringify(expired.body)).toBe(200);
    await vi.waitFor(async () => expect((await lookup(b!, asOwner, tag)).status).toBe(404), DEADLINE);
    expect((await lookup(b!, asOther, tag)).status).toBe(404);
  });
});
