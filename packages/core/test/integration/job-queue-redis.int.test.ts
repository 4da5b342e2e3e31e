import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '@shifter/core';
import { MongoMetadataStore } from '@shifter/core/mongo';
import { RedisJobQueue } from '@shifter/core/redis';
import { describeJobQueueContract, haveServices, serviceValue } from '@shifter/core/testing';

async function dropKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

describe.skipIf(!haveServices('redis'))('RedisJobQueue on the test Redis', () => {
  describeJobQueueContract('RedisJobQueue on SqliteMetadataStore', async ({ now }) => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-redis-queue-'));
    const store = new SqliteMetadataStore({ path: join(dir, 'gateway.sqlite'), now });
    const prefix = `shifter-test-${randomBytes(4).toString('hex')}`;
    const url = serviceValue('redis');
    return {
      store,
      makeQueue: () => new RedisJobQueue(store, { url, prefix, sweepIntervalMs: 100 }),
      teardown: async () => {
        await dropKeys(url, prefix);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });

  it('puts each system in its own BullMQ queue under the prefix', async () => {
    const store = new SqliteMetadataStore({ path: ':memory:' });
    const prefix = `shifter-test-${randomBytes(4).toString('hex')}`;
    const url = serviceValue('redis');
    const queue = new RedisJobQueue(store, { url, prefix });
    const redis = new Redis(url, { maxRetriesPerRequest: null });
    try {
      await queue.enqueue({ kind: 'pull', system: 'alpha' });
      await queue.enqueue({ kind: 'pull', system: 'beta' });
      const keys = await redis.keys(`${prefix}:*`);
      expect(keys.some((k) => k.startsWith(`${prefix}:alpha:`))).toBe(true);
      expect(keys.some((k) => k.startsWith(`${prefix}:beta:`))).toBe(true);
      await expect(queue.enqueue({ kind: 'pull', system: 'bad:name' })).rejects.toMatchObject({
        code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
      });
      expect(await store.listJobs()).toHaveLength(2);
    } finally {
      await queue.close();
      await store.close();
      await dropKeys(url, prefix);
      redis.disconnect();
    }
  });

  it('reports SHIFTER_STORE_UNAVAILABLE when Redis is unreachable at start', async () => {
    const store = new SqliteMetadataStore({ path: ':memory:' });
    const queue = new RedisJobQueue(store, { url: 'redis://127.0.0.1:1' });
    await expect(queue.process('s', async () => undefined)).rejects.toMatchObject({
      code: 'SHIFTER_STORE_UNAVAILABLE',
      retryable: true,
    });
    await queue.close({ timeoutMs: 0 });
    await store.close();
  });
});

describe.skipIf(!haveServices('redis', 'mongo'))('RedisJobQueue on MongoMetadataStore (distributed mode)', () => {
  let counter = 0;
  describeJobQueueContract('RedisJobQueue on MongoMetadataStore', async ({ now }) => {
    const database = `shifter_queue_test_${process.pid}_${counter++}_${randomBytes(3).toString('hex')}`;
    const store = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database, now });
    const prefix = `shifter-test-${randomBytes(4).toString('hex')}`;
    const url = serviceValue('redis');
    return {
      store,
      makeQueue: () => new RedisJobQueue(store, { url, prefix, sweepIntervalMs: 100 }),
      teardown: async () => {
        const dropper = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database });
        await dropper.dropDatabase();
        await dropper.close();
        await dropKeys(url, prefix);
      },
    };
  });
});
