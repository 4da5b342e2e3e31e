/**
 * The job table's interface: the part of the metadata store that holds job state (see `job-record.ts`).
 *
 * Queues ({@link JobQueue} backends) depend on this interface only. Every shipped store implements it with the
 * transitions written once in `job-transitions.ts` over a small backend primitive (`JobTable`), so the rules
 * below hold the same way on every backend. `describeJobStoreContract` in `@shifter/core/testing` is their executable
 * form.
 *
 * Errors (the same for every backend):
 * - `SHIFTER_JOB_ATTEMPTS_EXHAUSTED` ({@link StoreError}): a claim found the job out of attempts (it is now failed).
 * - `SHIFTER_JOB_CONFLICT` ({@link StoreError}): the backend could not settle a write under contention.
 * - `SHIFTER_STORE_UNAVAILABLE` ({@link StoreError}): the backend cannot be reached or refused the operation.
 * - `SHIFTER_USAGE_INVALID_ARGUMENT` (a ShifterError): a new job with an unknown kind, no system or bad `maxAttempts`.
 *
 * @packageDocumentation
 */
// Imported for TSDoc links only.
import type { StoreError } from '../errors/index.js';
import type { JobQueue } from './job-queue.js';
import type { JobError, JobKind, JobRecord, JobStatus, JsonValue, NewJob } from './job-record.js';

/** Filter of {@link JobStore.listJobs}. */
export interface JobFilter {
  /** Only this system. */
  readonly system?: string;
  /** Only this status (or these). */
  readonly status?: JobStatus | readonly JobStatus[];
  /** Only this kind. */
  readonly kind?: JobKind;
  /** At most this many (oldest first). */
  readonly limit?: number;
}

/** Options of {@link JobStore.claimJob} and {@link JobStore.claimNextJob}. */
export interface ClaimOptions {
  /** Worker id that will own the lease. */
  readonly owner: string;
  /** Lease length in ms from now. */
  readonly leaseMs: number;
}

/** Options of {@link JobStore.failJob}. */
export interface FailJobOptions {
  /** Put the job back to `queued` if attempts remain (otherwise it becomes `failed`). */
  readonly retry: boolean;
  /** With `retry`, epoch ms before which it must not be claimed again. */
  readonly notBefore?: number;
}

/**
 * Persistent job state: creation, atomic claims with leases, heartbeats, the ends of an attempt, listing and pruning.
 * Safe for concurrent use by many callers in one process and, for shared backends, by many processes: each method
 * changes at most one job atomically. Jobs returned are snapshots.
 *
 * Every write that ends a job (`done` or `failed`) erases the payload's `secrets` member
 * ({@link JobRecord.payload}).
 */
export interface JobStore {
  /** Create a queued job. @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE`. */
  createJob(input: NewJob): Promise<JobRecord>;

  /** The job with this id, or null. */
  getJob(id: string): Promise<JobRecord | null>;

  /**
   * Atomically claim one job: if it is `queued` (and `notBefore` has passed) or `running` with an expired lease, it
   * becomes `running` with `owner` holding a lease of `leaseMs`, and `attempts` + 1. Exactly one of several
   * concurrent claimers wins.
   * @returns the claimed job, or null when it is not claimable (done, failed, leased by a live owner, not yet due,
   *   or missing).
   * @throws {@link StoreError} `SHIFTER_JOB_ATTEMPTS_EXHAUSTED` when it was claimable but `attempts` had reached
   *   `maxAttempts`: the job is then marked `failed` with that code as `lastError` (details carry `jobId`).
   */
  claimJob(id: string, options: ClaimOptions): Promise<JobRecord | null>;

  /**
   * Claim the oldest claimable job of a system (same rules as {@link JobStore.claimJob}). Jobs found out of attempts
   * on the way are marked failed and reported through `onExhausted` instead of throwing.
   * @returns the claimed job, or null when none is claimable.
   */
  claimNextJob(
    system: string,
    options: ClaimOptions & { readonly onExhausted?: (job: JobRecord) => void },
  ): Promise<JobRecord | null>;

  /**
   * Extend the lease to `now + leaseMs` and record progress, only if `owner` still holds a running lease.
   * @returns the updated job, or null when the lease was lost (another owner, no longer running, or missing) — the
   *   caller must then stop working on the job.
   */
  heartbeatJob(id: string, options: ClaimOptions & { readonly progress?: JsonValue }): Promise<JobRecord | null>;

  /** Mark done with `result`, only if `owner` still holds the lease. @returns the job, or null when it did not. */
  completeJob(id: string, owner: string, result?: JsonValue): Promise<JobRecord | null>;

  /**
   * Record a failed attempt, only if `owner` still holds the lease: back to `queued` when `retry` and attempts remain,
   * else `failed`. @returns the job, or null when the owner did not hold the lease.
   */
  failJob(id: string, owner: string, error: JobError, options: FailJobOptions): Promise<JobRecord | null>;

  /** Jobs matching `filter`, oldest first. */
  listJobs(filter?: JobFilter): Promise<JobRecord[]>;

  /**
   * Jobs that are claimable now: `running` with `leaseExpiresAt < now`, plus `queued` ones due now. Queue sweepers
   * use it to re-dispatch work whose worker died.
   */
  listClaimableJobs(system?: string): Promise<JobRecord[]>;

  /** Delete finished (`done`/`failed`) jobs last updated before `before` (epoch ms). @returns how many. */
  pruneJobs(before: number): Promise<number>;
}
