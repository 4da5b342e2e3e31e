import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import { describeJobQueueContract } from '../testing/contracts/job-queue-contract.js';
import { InProcessJobQueue } from './in-process-job-queue.js';

describeJobQueueContract('InProcessJobQueue on SqliteMetadataStore', async ({ now }) => {
  const dir = mkdtempSync(join(tmpdir(), 'shifter-queue-'));
  const store = new SqliteMetadataStore({ path: join(dir, 'gateway.sqlite'), now });
  return {
    store,
    makeQueue: () => new InProcessJobQueue(store, { sweepIntervalMs: 50 }),
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe('InProcessJobQueue', () => {
  it('refuses bad options and a second processor for one system', async () => {
    const store = new SqliteMetadataStore({ path: ':memory:' });
    const queue = new InProcessJobQueue(store);
    await expect(queue.process('s', async () => undefined, { concurrency: 0 })).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
    await queue.process('s', async () => undefined);
    await expect(queue.process('s', async () => undefined)).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
    await queue.close();
    await queue.close();
    await expect(queue.process('t', async () => undefined)).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
    await store.close();
  });
});
