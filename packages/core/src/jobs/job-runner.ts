/**
 * The part of a worker both queue backends share: run one claimed job with its lease kept alive, and record the
 * outcome in the store. Backends differ only in how they learn that a job may be claimable.
 *
 * @packageDocumentation
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ShifterError, StoreError, toShifterError } from '../errors/index.js';
import type { JobStore } from './job-store.js';
import {
  DEFAULT_LEASE_MS,
  defaultRetryDelayMs,
  type JobContext,
  type JobHandler,
  type ProcessOptions,
} from './job-queue.js';
import type { JobRecord, JsonValue } from './job-record.js';
import { systemJobClock, type JobClock } from './job-clock.js';

/** {@link ProcessOptions} with every default filled in. */
export interface ResolvedProcessOptions {
  /** Handlers running at once (≥ 1). */
  readonly concurrency: number;
  /** Lease length, ms (≥ 50). */
  readonly leaseMs: number;
  /** Back-off before retry number `attempt`, ms. */
  readonly retryDelayMs: (attempt: number) => number;
  /** Called once per job that ends failed. */
  readonly onFailed: (job: JobRecord) => void | Promise<void>;
  /** Called once per job that ends done. */
  readonly onCompleted: (job: JobRecord) => void | Promise<void>;
}

/**
 * Fill defaults and check {@link ProcessOptions}.
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` for a concurrency or lease below 1.
 */
export function resolveProcessOptions(options: ProcessOptions = {}): ResolvedProcessOptions {
  const concurrency = options.concurrency ?? 1;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `concurrency must be an integer ≥ 1, got ${concurrency}`);
  }
  if (!(leaseMs >= 50))
    throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `leaseMs must be ≥ 50, got ${leaseMs}`);
  return {
    concurrency,
    leaseMs,
    retryDelayMs: options.retryDelayMs ?? defaultRetryDelayMs,
    onFailed: options.onFailed ?? (() => undefined),
    onCompleted: options.onCompleted ?? (() => undefined),
  };
}

/** A worker id unique to this process and queue: `<host>:<pid>:<random>`. */
export function newWorkerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** What happened to a job this runner ran. */
export type RunOutcome = 'done' | 'retry' | 'failed' | 'lost';

/**
 * Runs claimed jobs of one system for one worker id, tracking them so {@link JobRunner.close} can wait or abort.
 */
export class JobRunner {
  readonly #store: JobStore;
  readonly #handler: JobHandler;
  readonly #options: ResolvedProcessOptions;
  readonly #running = new Map<string, { promise: Promise<RunOutcome>; controller: AbortController }>();
  readonly #clock: JobClock;
  /** Worker id that owns the leases of the jobs this runner runs. */
  readonly workerId: string;

  /**
   * @param store - where the job state lives (claims are made by the caller; the runner heartbeats and records outcomes)
   * @param handler - the job handler
   * @param options - from {@link resolveProcessOptions}
   * @param workerId - the lease owner id the caller claimed jobs with
   * @param clock - heartbeat and close timers, and the time retry back-offs count from (default: the system clock)
   */
  constructor(
    store: JobStore,
    handler: JobHandler,
    options: ResolvedProcessOptions,
    workerId: string,
    clock: JobClock = systemJobClock,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#handler = handler;
    this.#options = options;
    this.workerId = workerId;
  }

  /** Lease length of the jobs this runner runs, ms. */
  get leaseMs(): number {
    return this.#options.leaseMs;
  }

  /** Jobs running now. */
  get runningCount(): number {
    return this.#running.size;
  }

  /** Whether another job fits under the concurrency bound. */
  get hasCapacity(): boolean {
    return this.#running.size < this.#options.concurrency;
  }

  /**
   * Run `job`, which this runner's worker id has just claimed. Resolves when the outcome is recorded; never rejects
   * (store failures are reported to the console and the lease simply expires).
   */
  run(job: JobRecord): Promise<RunOutcome> {
    const controller = new AbortController();
    const promise = this.#run(job, controller).finally(() => this.#running.delete(job.id));
    this.#running.set(job.id, { promise, controller });
    return promise;
  }

  async #run(job: JobRecord, controller: AbortController): Promise<RunOutcome> {
    const { leaseMs } = this.#options;
    const owner = this.workerId;
    let lost = false;
    const loseLease = (): void => {
      if (lost) return;
      lost = true;
      controller.abort(
        new StoreError('SHIFTER_JOB_LEASE_EXPIRED', `lost the lease of job ${job.id}`, { details: { jobId: job.id } }),
      );
    };
    const beat = async (progress?: JsonValue): Promise<void> => {
      if (controller.signal.aborted) throw controller.signal.reason;
      const renewed = await this.#store.heartbeatJob(job.id, {
        owner,
        leaseMs,
        ...(progress === undefined ? {} : { progress }),
      });
      if (!renewed) {
        loseLease();
        throw controller.signal.reason;
      }
    };
    const timer = this.#clock.setInterval(
      () => {
        if (!controller.signal.aborted) beat().catch(() => undefined);
      },
      Math.max(10, Math.floor(leaseMs / 3)),
    );
    const context: JobContext = { signal: controller.signal, workerId: owner, attempt: job.attempts, heartbeat: beat };
    try {
      let result: JsonValue | void;
      try {
        result = await this.#handler(job, context);
      } catch (error) {
        this.#clock.clearTimer(timer);
        if (lost) return 'lost';
        if (controller.signal.aborted) return 'lost'; // closing with abort: leave the lease to expire
        const failure = toShifterError(error);
        const retry = failure.retryable && job.attempts < job.maxAttempts;
        const after = await this.#store.failJob(
          job.id,
          owner,
          { code: failure.code, message: failure.message },
          { retry, notBefore: this.#clock.now() + this.#options.retryDelayMs(job.attempts) },
        );
        if (!after) return 'lost';
        if (after.status === 'failed') {
          await notify(this.#options.onFailed, after);
          return 'failed';
        }
        return 'retry';
      }
      this.#clock.clearTimer(timer);
      if (lost || controller.signal.aborted) return 'lost';
      const done = await this.#store.completeJob(job.id, owner, result ?? null);
      if (!done) return 'lost';
      await notify(this.#options.onCompleted, done);
      return 'done';
    } catch (error) {
      // The store failed while recording the outcome: the lease will expire and another attempt will run.
      console.error(`shifter job runner: could not record the outcome of job ${job.id}:`, error);
      return 'lost';
    } finally {
      this.#clock.clearTimer(timer);
    }
  }

  /** Report an exhausted job found while claiming. */
  async reportExhausted(job: JobRecord): Promise<void> {
    await notify(this.#options.onFailed, job);
  }

  /**
   * Wait for running jobs up to `timeoutMs`, then abort the rest (their leases are left to expire).
   */
  async close(timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    const all = Promise.allSettled([...this.#running.values()].map((r) => r.promise));
    if (Number.isFinite(timeoutMs)) {
      let timer: unknown;
      const expired = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((resolve) => (timer = this.#clock.setTimeout(() => resolve(true), timeoutMs))),
      ]);
      this.#clock.clearTimer(timer);
      if (expired) {
        // Not awaited: a handler that ignores its signal must not hold close() up; whatever it does later is not
        // recorded (the runner sees the aborted signal), and its lease expires.
        for (const { controller } of this.#running.values()) {
          controller.abort(new StoreError('SHIFTER_JOB_LEASE_EXPIRED', 'the job queue is closing'));
        }
      }
    } else {
      await all;
    }
  }
}

async function notify(callback: (job: JobRecord) => void | Promise<void>, job: JobRecord): Promise<void> {
  try {
    await callback(job);
  } catch (error) {
    console.error(`shifter job runner: callback for job ${job.id} failed:`, error);
  }
}
