import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../errors/index.js';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import { describeJobQueueContract } from '../testing/contracts/job-queue-contract.js';
import { ManualClock } from '../testing/manual-clock.js';
import { InProcessJobQueue } from './in-process-job-queue.js';
import type { JobTimer } from './job-clock.js';

describeJobQueueContract('InProcessJobQueue on SqliteMetadataStore', async ({ now, clock }) => {
  const dir = mkdtempSync(join(tmpdir(), 'shifter-queue-'));
  const store = new SqliteMetadataStore({ path: join(dir, 'gateway.sqlite'), now });
  return {
    store,
    makeQueue: () => new InProcessJobQueue(store, { sweepIntervalMs: 50, clock }),
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

describe('InProcessJobQueue on a manual clock', () => {
  it('runs a retry when its back-off has passed on the clock, not before', async () => {
    let retryArmed: () => void = () => undefined;
    const armed = new Promise<void>((resolve) => (retryArmed = resolve));
    // The queue's only time-out while a job runs is the timer for the retry's back-off.
    const clock = new (class extends ManualClock {
      override setTimeout(callback: () => void, ms: number): JobTimer {
        const timer = super.setTimeout(callback, ms);
        retryArmed();
        return timer;
      }
    })(1_000_000);
    const store = new SqliteMetadataStore({ path: ':memory:', now: () => clock.now() });
    const queue = new InProcessJobQueue(store, { clock, sweepIntervalMs: 500 });
    const attempts: number[] = [];
    let completed: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (completed = resolve));
    await queue.process(
      's',
      async (_job, { attempt }) => {
        attempts.push(attempt);
        if (attempt === 1) throw new RegistryError('SHIFTER_REGISTRY_UNAVAILABLE', 'registry down');
        return 'ok';
      },
      { retryDelayMs: () => 1_000, onCompleted: () => completed() },
    );
    const job = await queue.enqueue({ kind: 'pull', system: 's' });
    await armed;
    expect(await store.getJob(job.id)).toMatchObject({ status: 'queued', notBefore: 1_001_000 });
    clock.advance(999); // the sweeper runs; the retry is not due yet
    await new Promise((resolve) => setImmediate(resolve));
    expect(attempts).toEqual([1]);
    clock.advance(6); // the back-off (and the queue's 5 ms of slack) passed: the retry timer fires
    await done;
    expect(attempts).toEqual([1, 2]);
    expect(await store.getJob(job.id)).toMatchObject({ status: 'done', attempts: 2, result: 'ok' });
    const closing = queue.close({ timeoutMs: 0 });
    clock.advance(0);
    await closing;
    await store.close();
  });
});
