/**
 * The job queue contract suite: every {@link JobQueue} backend must pass it, on a real metadata store. Since job state
 * lives in the store, both shipped backends must behave identically here.
 *
 * No case waits for wall-clock time: the suite waits for events (a handler started, a job completed or failed) and
 * moves a {@link ManualClock} to expire leases and fire the queue's timers.
 *
 * @packageDocumentation
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryError, ShifterError } from '../../errors/index.js';
import type { JobClock } from '../../jobs/job-clock.js';
import type { JobQueue } from '../../jobs/job-queue.js';
import type { JobRecord } from '../../jobs/job-record.js';
import type { MetadataStore } from '../../metadata/metadata-store.js';
import { ManualClock } from '../manual-clock.js';

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
 * the suite moves that clock forward to expire leases instead of waiting for them. It keeps up with the wall clock
 * and only ever runs ahead of it, so a backend with timers of its own (BullMQ's delays) still agrees with it.
 *
 * A backend that takes a {@link JobClock} (`InProcessJobQueue`'s `clock` option) should take `clock`: its sweeps,
 * heartbeats, retry timers and close time-outs then fire when the suite moves the clock, and the run waits for no
 * wall-clock time at all. A backend on real timers passes too; its timers fire on their own.
 */
export type JobQueueFactory = (options: {
  readonly now: () => number;
  readonly clock: JobClock;
}) => Promise<QueueUnderTest>;

/**
 * Conditions a test waits for, checked again whenever a handler or a queue callback reports a change: waiting is
 * driven by events, never by polling on a timer. A condition that never comes true ends in the test's time-out.
 */
function conditions(): { changed: () => void; until: (condition: () => boolean) => Promise<void> } {
  const waiting = new Set<{ condition: () => boolean; resolve: () => void }>();
  return {
    changed: () => {
      for (const waiter of waiting) {
        if (!waiter.condition()) continue;
        waiting.delete(waiter);
        waiter.resolve();
      }
    },
    until: (condition) =>
      condition() ? Promise.resolve() : new Promise((resolve) => waiting.add({ condition, resolve })),
  };
}

/** Let every callback and microtask that is ready run (one turn of the event loop; no timer involved). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Define the contract tests for one queue backend.
 * @param name - shown in the test names
 * @param factory - makes a fresh store and a queue maker per test
 * @example
 * ```ts
 * describeJobQueueContract('InProcessJobQueue', async ({ now, clock }) => {
 *   const store = new SqliteMetadataStore({ path: ':memory:', now });
 *   return { store, makeQueue: () => new InProcessJobQueue(store, { sweepIntervalMs: 50, clock }) };
 * });
 * ```
 */
export function describeJobQueueContract(name: string, factory: JobQueueFactory): void {
  describe(`JobQueue contract: ${name}`, () => {
    let store: MetadataStore;
    let makeQueue: () => JobQueue | Promise<JobQueue>;
    let teardown: (() => Promise<void>) | undefined;
    let queues: JobQueue[];
    /** The store's clock and the timers of backends that take it: the wall clock plus what the test advanced. */
    let clock: ManualClock;
    /** Move the clock forward: leases expire, and the due timers of the backends on the clock fire. */
    const advance = (ms: number) => clock.advance(ms);
    let events: ReturnType<typeof conditions>;

    const newQueue = async (): Promise<JobQueue> => {
      const queue = await makeQueue();
      queues.push(queue);
      return queue;
    };
    const jobOf = async (id: string): Promise<JobRecord> => (await store.getJob(id))!;
    /** Close without waiting for running handlers (a time-out of 0 ms, fired at once on the clock). */
    const closeNow = (queue: JobQueue): Promise<void> => {
      const closing = queue.close({ timeoutMs: 0 });
      advance(0);
      return closing;
    };

    beforeEach(async () => {
      queues = [];
      clock = new ManualClock(Date.now);
      events = conditions();
      const made = await factory({ now: () => clock.now(), clock });
      store = made.store;
      makeQueue = made.makeQueue;
      teardown = made.teardown;
    });

    afterEach(async () => {
      await Promise.all(queues.map((q) => closeNow(q)));
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
        {
          onCompleted: (job) => {
            completed.push(job);
            events.changed();
          },
        },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa', payload: { recordId: 'r1' } });
      expect(job.status).toBe('queued');
      await events.until(() => completed.length > 0); // the store said done
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
      const completed: string[] = [];
      await queue.process('sysa', async (job) => void seen.push(job.system), {
        onCompleted: (job) => {
          completed.push(job.id);
          events.changed();
        },
      });
      const other = await queue.enqueue({ kind: 'pull', system: 'sysb' });
      const mine = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await events.until(() => completed.includes(mine.id));
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
      let done = false;
      await worker.process('sysa', async () => void runs++, {
        onCompleted: () => {
          done = true;
          events.changed();
        },
      });
      await events.until(() => done);
      expect((await jobOf(job.id)).status).toBe('done');
      expect(runs).toBe(1);
    });

    // The retry cases use a back-off of 0 ms: a retry is due at once, so no case waits for its back-off to pass.
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
        {
          retryDelayMs: () => 0,
          leaseMs: 2000,
          onFailed: (job) => {
            failed.push(job);
            events.changed();
          },
        },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa', maxAttempts: 3 });
      await events.until(() => failed.length > 0);
      await queue.close();
      expect(attempts).toEqual([1, 2, 3]);
      expect(await jobOf(job.id)).toMatchObject({
        status: 'failed',
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
        {
          retryDelayMs: () => 0,
          onFailed: (job) => {
            failed.push(job);
            events.changed();
          },
        },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa', maxAttempts: 5 });
      await events.until(() => failed.length > 0);
      await queue.close();
      expect(runs).toBe(1);
      expect(await jobOf(job.id)).toMatchObject({
        status: 'failed',
        lastError: { code: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN' },
      });
      expect(failed).toHaveLength(1);
    });

    it('succeeds on a later attempt after a transient failure', async () => {
      const queue = await newQueue();
      let done = false;
      await queue.process(
        'sysa',
        async (_job, { attempt }) => {
          if (attempt === 1) throw new RegistryError('SHIFTER_REGISTRY_RATE_LIMITED', 'slow down');
          return 'ok';
        },
        {
          retryDelayMs: () => 0,
          onCompleted: () => {
            done = true;
            events.changed();
          },
        },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await events.until(() => done);
      expect(await jobOf(job.id)).toMatchObject({
        status: 'done',
        attempts: 2,
        result: 'ok',
        lastError: { code: 'SHIFTER_REGISTRY_RATE_LIMITED' },
      });
    });

    it('never runs more handlers at once than its concurrency', async () => {
      const queue = await newQueue();
      let running = 0;
      let peak = 0;
      let done = 0;
      // Each handler runs until the test lets it finish, one at a time: handlers overlap for as long as the queue
      // lets them, whatever the machine's speed.
      const finish: (() => void)[] = [];
      await queue.process(
        'sysa',
        async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise<void>((resolve) => {
            finish.push(resolve);
            events.changed();
          });
          running--;
        },
        {
          concurrency: 2,
          onCompleted: () => {
            done++;
            events.changed();
          },
        },
      );
      const jobs = await Promise.all(Array.from({ length: 7 }, () => queue.enqueue({ kind: 'pull', system: 'sysa' })));
      // Nothing finishes before two handlers run at once: with seven jobs waiting, the queue must reach its
      // concurrency (releasing the first handler earlier let a slow second claim miss the overlap).
      await events.until(() => finish.length >= 2);
      for (let finished = 0; finished < jobs.length; finished++) {
        await events.until(() => finish.length > finished); // handler finished + 1 started
        (finish[finished] as () => void)();
      }
      await events.until(() => done === jobs.length);
      expect((await store.listJobs({ status: 'done' })).length).toBe(jobs.length);
      expect(peak).toBe(2);
    });

    it('takes over the job of a worker that stopped, once its lease expired', async () => {
      const first = await newQueue();
      let firstStarted = false;
      await first.process(
        'sysa',
        async () => {
          firstStarted = true;
          events.changed();
          await new Promise(() => undefined); // hangs forever, ignoring its signal, like a wedged process
        },
        { leaseMs: 60_000 },
      );
      const job = await first.enqueue({ kind: 'pull', system: 'sysa' });
      await events.until(() => firstStarted);
      await closeNow(first); // the worker "dies": no completion, no more heartbeats
      expect((await jobOf(job.id)).status).toBe('running');
      // Not before the lease ran out: while it runs (on the store's clock), nobody may claim the job.
      expect(await store.claimJob(job.id, { owner: 'too-early', leaseMs: 60_000 })).toBeNull();
      expect((await store.listClaimableJobs('sysa')).map((j) => j.id)).not.toContain(job.id);
      const second = await newQueue();
      const seen: number[] = [];
      let done = false;
      await second.process('sysa', async (_job, { attempt }) => void seen.push(attempt), {
        leaseMs: 60_000,
        onCompleted: () => {
          done = true;
          events.changed();
        },
      });
      advance(60_001); // the lease is over; the second worker's sweep finds the job
      await events.until(() => done);
      expect(seen).toEqual([2]);
      expect(await jobOf(job.id)).toMatchObject({ status: 'done', attempts: 2 });
    });

    it('fails a job whose worker died on its last attempt, and reports it', async () => {
      const first = await newQueue();
      let started = false;
      await first.process(
        'sysa',
        async () => {
          started = true;
          events.changed();
          await new Promise(() => undefined);
        },
        { leaseMs: 60_000 },
      );
      const job = await first.enqueue({ kind: 'pull', system: 'sysa', maxAttempts: 1 });
      await events.until(() => started);
      await closeNow(first);
      const second = await newQueue();
      const failed: JobRecord[] = [];
      let runs = 0;
      await second.process('sysa', async () => void runs++, {
        leaseMs: 60_000,
        onFailed: (j) => {
          failed.push(j);
          events.changed();
        },
      });
      advance(60_001);
      await events.until(() => failed.length > 0);
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
      let intruderClaimed: () => void = () => undefined;
      const intruder = new Promise<void>((resolve) => (intruderClaimed = resolve));
      await partitioned.process(
        'sysa',
        async (_job, { signal }) => {
          started = true;
          events.changed();
          // Simulate a network partition: another worker claims the job behind this one's back.
          await intruder;
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          abortReason = signal.reason;
          events.changed();
          return 'stale result';
        },
        { leaseMs: 300 },
      );
      const job = await partitioned.enqueue({ kind: 'pull', system: 'sysa' });
      await events.until(() => started);
      // Steal the lease the way a partition would let another worker: expire it, then claim. A heartbeat of the
      // runner between the two renews the lease and the claim fails: then try again.
      let claimed: JobRecord | null = null;
      for (let attempt = 0; claimed === null && attempt < 50; attempt++) {
        await forceExpire(store, job.id, advance);
        claimed = await store.claimJob(job.id, { owner: 'intruder', leaseMs: 60_000 });
      }
      expect(claimed).not.toBeNull();
      intruderClaimed();
      advance(100); // the runner's next heartbeat (every leaseMs / 3) finds the lease taken
      await events.until(() => abortReason !== undefined);
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
        events.changed();
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        return 'finished';
      });
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await events.until(() => started);
      let closed = false;
      const closing = queue.close().then(() => {
        closed = true;
      });
      await settle();
      expect(closed).toBe(false); // the handler still runs
      finish();
      await closing;
      expect(await jobOf(job.id)).toMatchObject({ status: 'done', result: 'finished' });
    });

    it('aborts running handlers when close times out, leaving the job to its lease', async () => {
      const queue = await newQueue();
      let signalled = false;
      let started = false;
      let returned: () => void = () => undefined;
      const handlerReturned = new Promise<void>((resolve) => (returned = resolve));
      let completed = false;
      await queue.process(
        'sysa',
        async (_job, { signal }) => {
          started = true;
          events.changed();
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          signalled = true;
          events.changed();
          setImmediate(returned);
          return 'after abort';
        },
        { leaseMs: 5000, onCompleted: () => void (completed = true) },
      );
      const job = await queue.enqueue({ kind: 'pull', system: 'sysa' });
      await events.until(() => started);
      const closing = queue.close({ timeoutMs: 50 });
      advance(50); // the time-out passes with the handler still running
      await closing;
      await events.until(() => signalled);
      // The runner decides on the late result as soon as the handler returns: one more turn of the event loop and
      // one store round trip, and a result it wrongly recorded would be visible.
      await handlerReturned;
      await settle();
      expect(completed).toBe(false);
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
