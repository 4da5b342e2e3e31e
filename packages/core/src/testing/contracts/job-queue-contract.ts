/**
 * The job queue contract suite: every {@link JobQueue} backend must pass it, on a real metadata store. Since job state
 * lives in the store, both shipped backends must behave identically here.
 *
 * @packageDocumentation
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryError, ShifterError } from '../../errors/index.js';
import type { JobQueue } from '../../jobs/job-queue.js';
import type { JobRecord } from '../../jobs/job-record.js';
import type { MetadataStore } from '../../metadata/metadata-store.js';

/** What a factory returns for one test. */
export interface QueueUnderTest {
  /** A fresh, empty store shared by every queue the test makes. */
  readonly store: MetadataStore;
  /**
   * Make a queue instance on `store`. Several instances model several worker processes (each must get its own
   * worker id). The suite closes every queue it makes.
   */
  readonly makeQueue: () => JobQueue | Promise<JobQueue>;
  /** Called after the queues and the store are closed. */
  readonly teardown?: () => Promise<void>;
}

/**
 * Makes the store and queue maker for one test. The store must take its time from `now` (the store's `now` option):
 * the suite moves that clock forward to expire leases instead of waiting for them. It starts at the wall-clock time
 * and only ever runs ahead of it, so the queue's own timers (sweeps, heartbeats, retry delays) still agree with it.
 */
export type JobQueueFactory = (options: { readonly now: () => number }) => Promise<QueueUnderTest>;

/** Wait until `condition` holds, polling; fails the test after `timeoutMs`. */
async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Define the contract tests for one queue backend.
 * @param name - shown in the test names
 * @param factory - makes a fresh store and a queue maker per test
 * @example
 * ```ts
 * describeJobQueueContract('InProcessJobQueue', async ({ now }) => {
 *   const store = new SqliteMetadataStore({ path: ':memory:', now });
 *   return { store, makeQueue: () => new InProcessJobQueue(store, { sweepIntervalMs: 50 }) };
 * });
 * ```
 */
export function describeJobQueueContract(name: string, factory: JobQueueFactory): void {
  describe(`JobQueue contract: ${name}`, () => {
    let store: MetadataStore;
    let makeQueue: () => JobQueue | Promise<JobQueue>;
    let teardown: (() => Promise<void>) | undefined;
    let queues: JobQueue[];
    /** How far the store's clock runs ahead of the wall clock. */
    let ahead = 0;
    const now = () => Date.now() + ahead;
    /** Move the store's clock forward (leases expire without waiting for them). */
    const advance = (ms: number) => {
      ahead += ms;
    };

    const newQueue = async (): Promise<JobQueue> => {
      const queue = await makeQueue();
      queues.push(queue);
      return queue;
    };
    const jobOf = async (id: string): Promise<JobRecord> => (await store.getJob(id))!;

    beforeEach(async () => {
      queues = [];
      ahead = 0;
      const made = await factory({ now });
      store = made.store;
      makeQueue = made.makeQueue;
      teardown = made.teardown;
    });

    afterEach(async () => {
      await Promise.all(queues.map((q) => q.close({ timeoutMs: 0 })));
      await store.close();
      await teardown?.();
    });

    it('runs an enqueued job once, with its payload, and records the result', async () => {
      const queue = await newQueue();
      const calls: { payload: unknown; attempt: number }[] = [];
      const completed: JobRecord[] = [];
      await queue.process(
        'sysa',
        async (job, { attempt }) => {
          calls.push({ payload: job.payload, attempt });
          return { imageId: 'abc' };
        },
        { onCompleted: (job) => void completed.push(job) },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa', payload: { recordId: 'r1' } });
      expect(job.status).toBe('queued');
      await waitFor(async () => (await jobOf(job.id)).status === 'done', 10_000, 'the job to finish');
      await queue.close(); // waits for whatever still runs: a duplicate run would show up below
      expect(calls).toEqual([{ payload: { recordId: 'r1' }, attempt: 1 }]);
      expect(await jobOf(job.id)).toMatchObject({
        status: 'done',
        attempts: 1,
        result: { imageId: 'abc' },
        leaseOwner: null,
      });
      expect(completed.map((j) => j.id)).toEqual([job.id]);
    });

    it('runs only the jobs of the system it processes', async () => {
      const queue = await newQueue();
      const seen: string[] = [];
      await queue.process('sysa', async (job) => void seen.push(job.system));
      const other = await queue.enqueue({ kind: 'pull', system: 'sysb' });
      const mine = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await waitFor(async () => (await jobOf(mine.id)).status === 'done');
      await queue.close();
      expect(seen).toEqual(['sysa']);
      expect((await jobOf(other.id)).status).toBe('queued');
    });

    it('runs jobs enqueued before any worker started (jobs are durable)', async () => {
      const producer = await newQueue();
      const job = await producer.enqueue({ kind: 'import', system: 'sysa' });
      await producer.close();
      const worker = await newQueue();
      let runs = 0;
      await worker.process('sysa', async () => void runs++);
      await waitFor(async () => (await jobOf(job.id)).status === 'done');
      expect(runs).toBe(1);
    });

    it('retries a retryable failure up to maxAttempts, then fails the job and reports it once', async () => {
      const queue = await newQueue();
      const attempts: number[] = [];
      const failed: JobRecord[] = [];
      await queue.process(
        'sysa',
        async (_job, { attempt }) => {
          attempts.push(attempt);
          throw new RegistryError('SHIFTER_REGISTRY_UNAVAILABLE', 'registry down');
        },
        { retryDelayMs: () => 20, leaseMs: 2000, onFailed: (job) => void failed.push(job) },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa', maxAttempts: 3 });
      await waitFor(async () => (await jobOf(job.id)).status === 'failed', 15_000, 'the job to fail');
      await queue.close();
      expect(attempts).toEqual([1, 2, 3]);
      expect(await jobOf(job.id)).toMatchObject({
        attempts: 3,
        lastError: { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'registry down' },
      });
      expect(failed.map((j) => j.id)).toEqual([job.id]);
    });

    it('does not retry a non-retryable failure', async () => {
      const queue = await newQueue();
      let runs = 0;
      const failed: JobRecord[] = [];
      await queue.process(
        'sysa',
        async () => {
          runs++;
          throw new ShifterError('SHIFTER_REGISTRY_MANIFEST_UNKNOWN', 'no such tag');
        },
        { retryDelayMs: () => 10, onFailed: (job) => void failed.push(job) },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa', maxAttempts: 5 });
      await waitFor(async () => (await jobOf(job.id)).status === 'failed');
      await queue.close();
      expect(runs).toBe(1);
      expect((await jobOf(job.id)).lastError?.code).toBe('SHIFTER_REGISTRY_MANIFEST_UNKNOWN');
      expect(failed).toHaveLength(1);
    });

    it('succeeds on a later attempt after a transient failure', async () => {
      const queue = await newQueue();
      await queue.process(
        'sysa',
        async (_job, { attempt }) => {
          if (attempt === 1) throw new RegistryError('SHIFTER_REGISTRY_RATE_LIMITED', 'slow down');
          return 'ok';
        },
        { retryDelayMs: () => 30 },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await waitFor(async () => (await jobOf(job.id)).status === 'done');
      expect(await jobOf(job.id)).toMatchObject({
        attempts: 2,
        result: 'ok',
        lastError: { code: 'SHIFTER_REGISTRY_RATE_LIMITED' },
      });
    });

    it('never runs more handlers at once than its concurrency', async () => {
      const queue = await newQueue();
      let running = 0;
      let peak = 0;
      // Each handler runs until the test lets it finish, one at a time: handlers overlap for as long as the queue
      // lets them, whatever the machine's speed.
      const finish: (() => void)[] = [];
      await queue.process(
        'sysa',
        async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise<void>((resolve) => finish.push(resolve));
          running--;
        },
        { concurrency: 2 },
      );
      const jobs = await Promise.all(Array.from({ length: 7 }, () => queue.enqueue({ kind: 'pull', system: 'sysa' })));
      // Nothing finishes before two handlers run at once: with seven jobs waiting, the queue must reach its
      // concurrency (releasing the first handler earlier let a slow second claim miss the overlap).
      await waitFor(() => finish.length >= 2, 10_000, 'two handlers to run at once');
      for (let finished = 0; finished < jobs.length; finished++) {
        await waitFor(() => finish.length > finished, 10_000, `handler ${finished + 1} to start`);
        (finish[finished] as () => void)();
      }
      await waitFor(async () => (await store.listJobs({ status: 'done' })).length === jobs.length, 15_000, 'all jobs');
      expect(peak).toBe(2);
    });

    it('takes over the job of a worker that stopped, once its lease expired', async () => {
      const first = await newQueue();
      let firstStarted = false;
      await first.process(
        'sysa',
        async () => {
          firstStarted = true;
          await new Promise(() => undefined); // hangs forever, ignoring its signal, like a wedged process
        },
        { leaseMs: 60_000 },
      );
      const job = await first.enqueue({ kind: 'pull', system: 'sysa' });
      await waitFor(() => firstStarted, 10_000, 'the first worker to start');
      await first.close({ timeoutMs: 0 }); // the worker "dies": no completion, no more heartbeats
      expect((await jobOf(job.id)).status).toBe('running');
      // Not before the lease ran out: while it runs (on the store's clock), nobody may claim the job.
      expect(await store.claimJob(job.id, { owner: 'too-early', leaseMs: 60_000 })).toBeNull();
      expect((await store.listClaimableJobs('sysa')).map((j) => j.id)).not.toContain(job.id);
      const second = await newQueue();
      const seen: number[] = [];
      await second.process('sysa', async (_job, { attempt }) => void seen.push(attempt), { leaseMs: 60_000 });
      advance(60_001);
      await waitFor(async () => (await jobOf(job.id)).status === 'done', 15_000, 'the takeover');
      expect(seen).toEqual([2]);
      expect((await jobOf(job.id)).attempts).toBe(2);
    });

    it('fails a job whose worker died on its last attempt, and reports it', async () => {
      const first = await newQueue();
      let started = false;
      await first.process(
        'sysa',
        async () => {
          started = true;
          await new Promise(() => undefined);
        },
        { leaseMs: 60_000 },
      );
      const job = await first.enqueue({ kind: 'pull', system: 'sysa', maxAttempts: 1 });
      await waitFor(() => started);
      await first.close({ timeoutMs: 0 });
      const second = await newQueue();
      const failed: JobRecord[] = [];
      let runs = 0;
      await second.process('sysa', async () => void runs++, { leaseMs: 60_000, onFailed: (j) => void failed.push(j) });
      advance(60_001);
      await waitFor(() => failed.length > 0, 15_000, 'the failure report');
      expect(runs).toBe(0);
      expect(failed[0]).toMatchObject({
        id: job.id,
        status: 'failed',
        lastError: { code: 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED' },
      });
    });

    it('aborts a handler that lost its lease and ignores what it does afterwards', async () => {
      const partitioned = await newQueue();
      let abortReason: unknown;
      let started = false;
      await partitioned.process(
        'sysa',
        async (job, { signal }) => {
          started = true;
          // Simulate a network partition: another worker claims the job behind this one's back.
          await waitFor(async () => (await store.getJob(job.id))!.leaseOwner === 'intruder', 10_000, 'the intruder');
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          abortReason = signal.reason;
          return 'stale result';
        },
        { leaseMs: 300 },
      );
      const job = await partitioned.enqueue({ kind: 'pull', system: 'sysa' });
      await waitFor(() => started);
      // Steal the lease the way a partition would let another worker: expire it, then claim.
      let claimed: JobRecord | null = null;
      await waitFor(
        async () => {
          await forceExpire(store, job.id, advance);
          claimed = await store.claimJob(job.id, { owner: 'intruder', leaseMs: 60_000 });
          return claimed !== null;
        },
        10_000,
        'the intruder to claim the job',
      );
      expect(claimed).not.toBeNull();
      await waitFor(() => abortReason !== undefined, 10_000, 'the abort');
      expect((abortReason as ShifterError).code).toBe('SHIFTER_JOB_LEASE_EXPIRED');
      await partitioned.close(); // waits until the runner has dealt with the handler's late result
      expect(await jobOf(job.id)).toMatchObject({ status: 'running', leaseOwner: 'intruder', result: null });
    });

    it('waits for running handlers on close by default', async () => {
      const queue = await newQueue();
      let started = false;
      let finish: () => void = () => undefined;
      await queue.process('sysa', async () => {
        started = true;
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        return 'finished';
      });
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await waitFor(() => started);
      let closed = false;
      const closing = queue.close().then(() => {
        closed = true;
      });
      await new Promise((resolve) => setImmediate(resolve));
      expect(closed).toBe(false); // the handler still runs
      finish();
      await closing;
      expect(await jobOf(job.id)).toMatchObject({ status: 'done', result: 'finished' });
    });

    it('aborts running handlers when close times out, leaving the job to its lease', async () => {
      const queue = await newQueue();
      let signalled = false;
      let started = false;
      await queue.process(
        'sysa',
        async (_job, { signal }) => {
          started = true;
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          signalled = true;
          return 'after abort';
        },
        { leaseMs: 5000 },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await waitFor(() => started);
      await queue.close({ timeoutMs: 50 });
      await waitFor(() => signalled);
      await sleep(100);
      expect(await jobOf(job.id)).toMatchObject({ status: 'running', result: null });
    });
  });
}

/** Push a running job's lease into the past: heartbeat as its owner with a 1 ms lease, then move the clock past it. */
async function forceExpire(store: MetadataStore, id: string, advance: (ms: number) => void): Promise<void> {
  const job = (await store.getJob(id))!;
  if (job.leaseOwner) await store.heartbeatJob(id, { owner: job.leaseOwner, leaseMs: 1 });
  advance(5);
}
