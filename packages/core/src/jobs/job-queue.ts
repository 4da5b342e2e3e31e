/**
 * The job queue: run background jobs (pulls, imports, expiries) on workers, one system per worker loop.
 *
 * Delivery is **at least once** with a lease: a job may run more than once (a worker that loses its lease, dies, or
 * is slow to heartbeat is replaced), so handlers must be idempotent — each step must be safe to redo (write temp
 * files and rename, compare-and-set record states, treat "already there" as success).
 *
 * Job state lives in a {@link JobStore} (the metadata store's job table); a backend only wakes workers. Two backends
 * ship: `InProcessJobQueue` (in `@shifter/core`) and `RedisJobQueue` (BullMQ, in `@shifter/core/redis`). Both pass
 * `describeJobQueueContract` from `@shifter/core/testing`.
 *
 * @packageDocumentation
 */
import type { JobRecord, JsonValue, NewJob } from './job-record.js';

/** What a handler gets besides the job. */
export interface JobContext {
  /**
   * Fires when the worker lost the lease (another worker took the job over) or the queue is closing with abort. The
   * handler should stop promptly; anything it writes after that may race with the new owner.
   */
  readonly signal: AbortSignal;
  /** The worker id holding the lease. */
  readonly workerId: string;
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number;
  /**
   * Extend the lease now and record progress. The queue also heartbeats on its own every `leaseMs / 3` while the
   * handler runs, so calling this is needed only to report progress.
   * @throws {@link StoreError} `SHIFTER_JOB_LEASE_EXPIRED` when the lease was lost (and `signal` fires).
   */
  heartbeat(progress?: JsonValue): Promise<void>;
}

/**
 * Runs one job. Resolve with a JSON result to mark it done. Throw to fail the attempt: a ShifterError with
 * `retryable: true` is retried (with back-off) while attempts remain; anything else fails the job for good.
 * Must be idempotent (see the module documentation).
 */
export type JobHandler = (job: JobRecord, context: JobContext) => Promise<JsonValue | void>;

/** Options of {@link JobQueue.process}. */
export interface ProcessOptions {
  /** Handlers running at the same time in this worker (default 1). */
  readonly concurrency?: number;
  /** Lease length in ms (default 30 000). A worker silent for this long is presumed dead. */
  readonly leaseMs?: number;
  /** Back-off before a retry, from the attempt number (default `min(1000 * 2^(attempt-1), 30000)` ms). */
  readonly retryDelayMs?: (attempt: number) => number;
  /**
   * Called once when a job of this system ends `failed` — a non-retryable error, the last attempt failing, or a
   * claim finding it out of attempts after its worker died. The service uses it to move the image record to
   * FAILURE. Errors it throws are logged and ignored.
   */
  readonly onFailed?: (job: JobRecord) => void | Promise<void>;
  /** Called when a job completed (after the store says done). Errors are ignored. */
  readonly onCompleted?: (job: JobRecord) => void | Promise<void>;
}

/** Options of {@link JobQueue.close}. */
export interface CloseOptions {
  /**
   * How long to wait for running handlers (ms, default: no limit). Past it their signals are aborted and close
   * returns without completing them: those jobs stay `running` until their lease expires, then another worker
   * takes them over.
   */
  readonly timeoutMs?: number;
}

/** A job queue. */
export interface JobQueue {
  /**
   * Create the job in the store (state `queued`) and wake a worker of `job.system`. The job is durable once this
   * resolves: it runs even if every worker is down now (when one starts).
   * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE`.
   */
  enqueue(job: NewJob): Promise<JobRecord>;

  /**
   * Start working on `system`'s jobs with `handler` in this process, until {@link close}. On start it dispatches
   * jobs already waiting in the store (queued, or running with an expired lease — their worker died), and a sweeper
   * keeps doing so, so no job is stuck past its lease. At most `concurrency` handlers run at once. Call at most
   * once per system per queue instance.
   * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE` when the backend cannot be reached at start.
   */
  process(system: string, handler: JobHandler, options?: ProcessOptions): Promise<void>;

  /**
   * Stop claiming jobs, wait for running handlers (see {@link CloseOptions.timeoutMs}), release backend connections.
   * Does not close the metadata store (the caller owns it). Idempotent.
   */
  close(options?: CloseOptions): Promise<void>;
}

/** Default lease length in ms. */
export const DEFAULT_LEASE_MS = 30_000;

/** Default retry back-off: 1 s, 2 s, 4 s, … capped at 30 s. */
export function defaultRetryDelayMs(attempt: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempt - 1), 30_000);
}
