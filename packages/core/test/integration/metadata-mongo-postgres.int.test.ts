/**
 * The Mongo store on FerretDB's PostgreSQL backend (the production-like one), and the lookup cache of the
 * distributed deployment (withLookupCache + RedisInvalidationBus) on it: the same contract suites as on the SQLite
 * backend, plus the cross-process behaviour of the cache with two real Redis subscriptions.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { type CachedMetadataStore, withLookupCache } from '@shifter/core/internal';
import { MongoMetadataStore } from '@shifter/core/mongo';
import { RedisInvalidationBus, RedisJobQueue } from '@shifter/core/redis';
import {
  describeJobQueueContract,
  describeMetadataStoreContract,
  haveServices,
  serviceValue,
} from '@shifter/core/testing';

const prefix = `shifter_pg_${process.pid}_${randomBytes(3).toString('hex')}`;
let counter = 0;

async function drop(database: string): Promise<void> {
  const dropper = await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database });
  await dropper.dropDatabase();
  await dropper.close();
}

describe.skipIf(!haveServices('mongoPg'))('MongoMetadataStore on FerretDB (PostgreSQL backend)', () => {
  describeMetadataStoreContract('MongoMetadataStore (PostgreSQL backend)', async ({ now }) => {
    const database = `${prefix}_${counter++}`;
    const store = await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database, now });
    return { store, teardown: () => drop(database) };
  });

  it('keeps claims and compare-and-set exclusive across two connections', async () => {
    const database = `${prefix}_shared`;
    const a = await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database });
    const b = await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database });
    try {
      const request = { system: 's', itype: 'docker', pulltag: 'alpine:3', status: 'INIT' as const };
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).createOrGetInFlight(request)),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      const job = await a.createJob({ kind: 'pull', system: 's' });
      const claims = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).claimJob(job.id, { owner: `w${i}`, leaseMs: 60_000 })),
      );
      expect(claims.filter((c) => c !== null)).toHaveLength(1);
      const updates = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).update(results[0]!.record.recordId, { status: 'PENDING' }, { expectRevision: 1 }),
        ),
      );
      expect(updates.filter((u) => u.status === 'fulfilled')).toHaveLength(1);
    } finally {
      await a.dropDatabase();
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe.skipIf(!haveServices('mongoPg', 'redis'))(
  'the distributed deployment on FerretDB (PostgreSQL backend)',
  () => {
    describeJobQueueContract('RedisJobQueue on MongoMetadataStore (PostgreSQL backend)', async ({ now }) => {
      const database = `${prefix}_${counter++}`;
      const store = await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database, now });
      const queuePrefix = `shifter-test-${randomBytes(4).toString('hex')}`;
      return {
        store,
        makeQueue: () =>
          new RedisJobQueue(store, { url: serviceValue('redis'), prefix: queuePrefix, sweepIntervalMs: 100 }),
        teardown: async () => {
          await drop(database);
          const redis = new Redis(serviceValue('redis'), { maxRetriesPerRequest: null });
          const keys = await redis.keys(`${queuePrefix}:*`);
          if (keys.length > 0) await redis.del(...keys);
          redis.disconnect();
        },
      };
    });

    describeMetadataStoreContract('withLookupCache(MongoMetadataStore) on Redis pub/sub', async ({ now }) => {
      const database = `${prefix}_${counter++}`;
      const bus = await RedisInvalidationBus.connect({ url: serviceValue('redis'), channel: `${database}:metadata` });
      const store = withLookupCache(
        await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database, now }),
        bus,
      );
      await vi.waitFor(() => expect(store.lookupCacheStats().live).toBe(true), { timeout: 10_000 });
      return { store, teardown: () => drop(database) };
    });

    /** Two "processes": each its own store connection, bus and cache, on one database and channel. */
    async function pair(): Promise<{ a: CachedMetadataStore; b: CachedMetadataStore; database: string }> {
      const database = `${prefix}_${counter++}`;
      const open = async () =>
        withLookupCache(
          await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database }),
          await RedisInvalidationBus.connect({ url: serviceValue('redis'), channel: `${database}:metadata` }),
        );
      const [a, b] = await Promise.all([open(), open()]);
      await vi.waitFor(() => expect(a.lookupCacheStats().live && b.lookupCacheStats().live).toBe(true), {
        timeout: 10_000,
      });
      return { a, b, database };
    }

    it('shows a write made through one process to the lookups of the other', async () => {
      const { a, b, database } = await pair();
      try {
        const record = await a.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['a:1'], imageId: 'i1' });
        // B answers from memory once A's invalidation for the insert has arrived (it may come after B's first read).
        await vi.waitFor(
          async () => {
            const hits = b.lookupCacheStats().hits;
            expect((await b.findReadyByTag('s', 'docker', 'a:1'))?.recordId).toBe(record.recordId);
            expect(b.lookupCacheStats().hits).toBeGreaterThan(hits);
          },
          { timeout: 10_000 },
        );
        await a.update(record.recordId, { status: 'EXPIRED' });
        await vi.waitFor(async () => expect(await b.findReadyByTag('s', 'docker', 'a:1')).toBeNull(), {
          timeout: 10_000,
        });
        const other = await a.insert({ system: 's', itype: 'docker', status: 'READY', tags: [], imageId: 'i2' });
        await a.moveTag(other.recordId, 'a:1');
        await vi.waitFor(
          async () => expect((await b.findReadyByTag('s', 'docker', 'a:1'))?.recordId).toBe(other.recordId),
          { timeout: 10_000 },
        );
        await a.delete(other.recordId);
        await vi.waitFor(async () => expect(await b.findReadyByTag('s', 'docker', 'a:1')).toBeNull(), {
          timeout: 10_000,
        });
      } finally {
        await a.close();
        await b.close();
        await drop(database);
      }
    });

    it('trusts nothing it cached once its subscription was lost', async () => {
      const { a, b, database } = await pair();
      const raw = await MongoMetadataStore.connect({ url: serviceValue('mongoPg'), database });
      const redis = new Redis(serviceValue('redis'), { maxRetriesPerRequest: null });
      try {
        const record = await a.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['a:1'] });
        await b.findReadyByTag('s', 'docker', 'a:1');
        // Kill the subscriptions of this channel (the bus names its subscriber connections after it), then write
        // without publishing: what B cached before must not be served afterwards.
        const before = b.lookupCacheStats().invalidations;
        const clients = ((await redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).split('\n');
        const ours = clients.filter((line) => line.includes(`name=shifter-invalidation:${database}:metadata `));
        expect(ours).toHaveLength(2);
        for (const line of ours) await redis.call('CLIENT', 'KILL', 'ID', /\bid=(\d+)/.exec(line)![1]!);
        await vi.waitFor(() => expect(b.lookupCacheStats().invalidations).toBeGreaterThan(before), { timeout: 10_000 });
        await raw.update(record.recordId, { status: 'EXPIRED' });
        expect(await b.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
        await vi.waitFor(() => expect(b.lookupCacheStats().live).toBe(true), { timeout: 10_000 });
        expect(await b.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
      } finally {
        redis.disconnect();
        await raw.close();
        await a.close();
        await b.close();
        await drop(database);
      }
    });
  },
);
