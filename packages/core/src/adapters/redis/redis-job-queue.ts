/**
 * The distributed job queue: BullMQ on Redis wakes workers in other processes or on other hosts, one BullMQ queue
 * per system (Redis keys `<prefix>:<system>:…`). BullMQ only carries wake-ups (`{ jobId }`); the metadata store's
 * atomic claim decides who runs a job, so duplicate or stale wake-ups are harmless and the behaviour matches
 * `InProcessJobQueue` exactly.
 *
 * A sweeper re-sends wake-ups for jobs the store says are claimable (queued and due, or running with an expired
 * lease), so jobs whose worker died, or whose wake-up was lost (Redis restarted), still run.
 *
 * @packageDocumentation
 */
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import { ShifterError, StoreError } from '../../errors/index.js';
import type { CloseOptions, JobHandler, JobQueue, ProcessOptions } from '../../jobs/job-queue.js';
import type { JobRecord, NewJob } from '../../jobs/job-record.js';
import { JobRunner, newWorkerId, resolveProcessOptions } from '../../jobs/job-runner.js';
import type { JobStore } from '../../jobs/job-store.js';

/** Options of {@link RedisJobQueue}. */
export interface RedisJobQueueOptions {
  /** Redis URL, e.g. `redis://127.0.0.1:6379`. Ignored when `connection` is given. */
  readonly url?: string;
  /** An ioredis client to use for producing; must have `maxRetriesPerRequest: null`. Not closed by the queue. */
  readonly connection?: Redis;
  /** Key prefix (default `shifter`): the queue of system `s` lives under `<prefix>:<s>`. */
  readonly prefix?: string;
  /** Worker id owning the leases (default `<host>:<pid>:<random>`). */
  readonly workerId?: string;
  /** How often the sweeper re-sends wake-ups for claimable jobs, ms (default `min(leaseMs / 2, 5000)`). */
  readonly sweepIntervalMs?: number;
}

interface WakeData {
  jobId: string;
}

interface SystemWorker {
  readonly runner: JobRunner;
  readonly worker: Worker<WakeData>;
  readonly connection: Redis;
  readonly sweeper: NodeJS.Timeout;
}

const SYSTEM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * {@link JobQueue} on BullMQ + Redis.
 *
 * @example
 * ```ts
 * import { RedisJobQueue } from '@shifter/core/redis';
 * const queue = new RedisJobQueue(store, { url: 'redis://127.0.0.1:6379' });
 * await queue.process('cluster1', handler, { concurrency: 2 });
 * ```
 */
export class RedisJobQueue implements JobQueue {
  readonly #store: JobStore;
  readonly #url: string | undefined;
  readonly #producer: Redis;
  readonly #ownsProducer: boolean;
  readonly #prefix: string;
  readonly #workerId: string;
  readonly #sweepIntervalMs: number | undefined;
  readonly #queues = new Map<string, Queue<WakeData>>();
  readonly #workers = new Map<string, SystemWorker>();
  #closed = false;

  /**
   * @param store - where job state lives; the queue does not close it
   * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` when neither `url` nor `connection` is given.
   */
  constructor(store: JobStore, options: RedisJobQueueOptions) {
    if (!options.url && !options.connection) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'RedisJobQueue needs a url or a connection');
    }
    this.#store = store;
    this.#url = options.url;
    this.#producer = options.connection ?? this.#connect();
    this.#ownsProducer = !options.connection;
    this.#prefix = options.prefix ?? 'shifter';
    this.#workerId = options.workerId ?? newWorkerId();
    this.#sweepIntervalMs = options.sweepIntervalMs;
  }

  #connect(): Redis {
    if (!this.#url)
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'RedisJobQueue needs a url to open worker connections');
    // NOTE: BullMQ requires maxRetriesPerRequest: null on connections used by workers (blocking commands).
    const connection = new Redis(this.#url, { maxRetriesPerRequest: null, lazyConnect: false });
    connection.on('error', () => undefined); // reported through failed commands; keeps the process alive
    return connection;
  }

  #queue(system: string): Queue<WakeData> {
    if (!SYSTEM_NAME.test(system)) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `system name ${JSON.stringify(system)} cannot name a queue`,
      );
    }
    let queue = this.#queues.get(system);
    if (!queue) {
      queue = new Queue<WakeData>(system, { connection: this.#producer, prefix: this.#prefix });
      queue.on('error', () => undefined);
      this.#queues.set(system, queue);
    }
    return queue;
  }

  /** Send a wake-up for `job`; its BullMQ id names the attempt, so repeated sweeps do not pile up copies. */
  async #wake(job: JobRecord): Promise<void> {
    const delay = Math.max(0, job.notBefore - Date.now());
    await this.#queue(job.system).add(
      'wake',
      { jobId: job.id },
      { jobId: `${job.id}-a${job.attempts}`, delay, removeOnComplete: true, removeOnFail: true },
    );
  }

  async enqueue(job: NewJob): Promise<JobRecord> {
    if (this.#closed) throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'the job queue is closed');
    this.#queue(job.system); // validate the system name before the job exists
    const record = await this.#store.createJob(job);
    // The job is durable now. A lost wake-up only delays it until the next sweep, so do not report the job as not
    // enqueued (a caller retrying would create a duplicate).
    await this.#wake(record).catch((error: unknown) => {
      console.warn(
        `shifter redis queue: wake-up for job ${record.id} not sent (the sweeper will retry):`,
        (error as Error).message,
      );
    });
    return record;
  }

  async process(system: string, handler: JobHandler, options?: ProcessOptions): Promise<void> {
    if (this.#closed) throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'the job queue is closed');
    if (this.#workers.has(system)) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `this queue already processes system ${system}`);
    }
    const resolved = resolveProcessOptions(options);
    this.#queue(system);
    // ioredis queues commands while it reconnects (forever, with maxRetriesPerRequest: null): bound the wait.
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#producer.ping(),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer to PING within 3 s')), 3000))),
      ]);
    } catch (error) {
      throw new StoreError('SHIFTER_STORE_UNAVAILABLE', `Redis is unreachable: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
    const runner = new JobRunner(this.#store, handler, resolved, this.#workerId);
    const connection = this.#connect();
    const worker = new Worker<WakeData>(system, (bullJob) => this.#onWake(system, runner, bullJob), {
      connection,
      prefix: this.#prefix,
      concurrency: resolved.concurrency,
      autorun: true,
    });
    worker.on('error', (error) => console.warn(`shifter redis queue: worker for ${system}:`, error.message));
    const interval = this.#sweepIntervalMs ?? Math.min(Math.floor(resolved.leaseMs / 2), 5000);
    const sweeper = setInterval(() => void this.#sweep(system), Math.max(10, interval));
    this.#workers.set(system, { runner, worker, connection, sweeper });
    await worker.waitUntilReady();
    // Jobs left by a previous run (queued, or running under a dead worker's lease) get their wake-ups now.
    await this.#sweep(system);
  }

  async #sweep(system: string): Promise<void> {
    if (this.#closed) return;
    try {
      for (const job of await this.#store.listClaimableJobs(system)) await this.#wake(job);
    } catch (error) {
      if (this.#closed) return;
      console.warn(`shifter redis queue: sweep of ${system} failed (will retry):`, (error as Error).message);
    }
  }

  async #onWake(system: string, runner: JobRunner, bullJob: BullJob<WakeData>): Promise<void> {
    if (this.#closed) return;
    let job: JobRecord | null;
    try {
      job = await this.#store.claimJob(bullJob.data.jobId, { owner: this.#workerId, leaseMs: runner.leaseMs });
    } catch (error) {
      if (ShifterError.isInstance(error) && error.code === 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED') {
        const failed = await this.#store.getJob(bullJob.data.jobId);
        if (failed) await runner.reportExhausted(failed);
        return;
      }
      throw error; // BullMQ logs it; the sweeper re-sends the wake-up
    }
    if (!job || job.system !== system) return;
    const outcome = await runner.run(job);
    if (outcome === 'retry') {
      const queued = await this.#store.getJob(job.id);
      if (queued?.status === 'queued') await this.#wake(queued);
    }
  }

  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const { sweeper } of this.#workers.values()) clearInterval(sweeper);
    await Promise.all(
      [...this.#workers.values()].map(async ({ runner, worker, connection }) => {
        // Stop fetching wake-ups first, then let running handlers finish (or abort them), then drop the worker
        // without waiting for BullMQ's view of active jobs (an aborted handler may never return).
        await worker.pause(true).catch(() => undefined);
        await runner.close(options.timeoutMs);
        await worker.close(true).catch(() => undefined);
        connection.disconnect();
      }),
    );
    await Promise.all([...this.#queues.values()].map((queue) => queue.close().catch(() => undefined)));
    if (this.#ownsProducer) this.#producer.disconnect();
  }
}
