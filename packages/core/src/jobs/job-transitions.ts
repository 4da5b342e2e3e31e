/**
 * The job state machine, written once: every {@link JobStore} method as a transition over a small backend primitive,
 * the {@link JobTable}. A backend supplies storage (insert, get, the queries below) and one atomic conditional
 * update; the rules — who may claim, when a lease is lost, when a job is out of attempts, what a failed attempt
 * becomes, that an ended job loses its secrets — live here only.
 *
 * ```
 *  createJob → queued ──claim──▶ running ──completeJob──▶ done
 *                 ▲                 │  └──failJob (no retry, or no attempts left)──▶ failed
 *                 └──failJob(retry)─┘  (lease expired ⇒ claimable again; a claim out of attempts ⇒ failed)
 * ```
 *
 * Shipped tables: SQLite (`metadata/sqlite-metadata-store.ts`: the update is one `IMMEDIATE` transaction) and
 * MongoDB (`adapters/mongo/mongo-metadata-store.ts`: the update holds the job's lock document and writes with
 * compare-and-set on a hidden revision, since FerretDB does not apply filtered updates atomically).
 *
 * Internal to core (`@shifter/core/internal`): the store classes are the public face.
 *
 * @packageDocumentation
 */
import { ShifterError, StoreError } from '../errors/index.js';
import {
  DEFAULT_MAX_ATTEMPTS,
  JOB_KINDS,
  eraseEndedJobSecrets,
  type JobError,
  type JobKind,
  type JobRecord,
  type JobStatus,
  type JsonValue,
  type NewJob,
} from './job-record.js';
import type { ClaimOptions, FailJobOptions, JobFilter, JobStore } from './job-store.js';

/** The query of {@link JobTable.list}: a {@link JobFilter} normalised, with the empty answers ruled out. */
export interface JobTableQuery {
  /** Only this system. */
  readonly system?: string;
  /** Only these statuses (never empty). */
  readonly statuses?: readonly JobStatus[];
  /** Only this kind. */
  readonly kind?: JobKind;
  /** At most this many (an integer ≥ 1). */
  readonly limit?: number;
}

/**
 * What a backend supplies so that {@link JobTransitions} can run on it. "Oldest first" means by `createdAt`, ties
 * broken by insertion order (or any order stable across calls).
 *
 * Methods may throw the backend's own errors: {@link JobTransitions} reports those as `SHIFTER_STORE_UNAVAILABLE`.
 */
export interface JobTable {
  /** Store a new job under its `id` (never one that exists). */
  insert(job: JobRecord): Promise<void>;

  /** The stored job, or null. */
  get(id: string): Promise<JobRecord | null>;

  /**
   * The atomic conditional update every transition is made of: read job `id`, pass it to `change`, and if `change`
   * returns a job, store that one — as one step with respect to every other `update` of the same job, from this
   * process or another. `change` is synchronous and pure; a backend that retries (a lost compare-and-set) calls it
   * again with the job as it now is, and must use only the last call's answer. It may throw to abort (nothing is
   * written, the error propagates).
   * @returns the job written, or null when the job does not exist or `change` returned null.
   */
  update(id: string, change: (current: JobRecord) => JobRecord | null): Promise<JobRecord | null>;

  /** Jobs matching `query`, oldest first. */
  list(query: JobTableQuery): Promise<JobRecord[]>;

  /**
   * Jobs claimable at `now` — `queued` with `notBefore <= now`, or `running` with `leaseExpiresAt < now` — of
   * `system` if given, oldest first. A superset is allowed (each claim checks again); missing one delays it.
   */
  listClaimable(now: number, system?: string): Promise<JobRecord[]>;

  /** Delete `done` and `failed` jobs with `updatedAt < before`. @returns how many. */
  deleteEnded(before: number): Promise<number>;
}

/** Options of {@link JobTransitions}. */
export interface JobTransitionsOptions {
  /** Clock (epoch ms). */
  readonly now: () => number;
  /** A new, unique job id (the backend's id scheme). */
  readonly newId: () => string;
  /** Whether the store was closed: every method then fails with a non-retryable `SHIFTER_STORE_UNAVAILABLE`. */
  readonly isClosed?: () => boolean;
}

/**
 * {@link JobStore} over a {@link JobTable}: the one implementation of the job state transitions.
 *
 * @example
 * ```ts
 * const jobs = new JobTransitions(table, { now: Date.now, newId: () => randomUUID() });
 * const job = await jobs.createJob({ kind: 'pull', system: 'cluster' });
 * await jobs.claimJob(job.id, { owner: 'worker-1', leaseMs: 30_000 });
 * ```
 */
export class JobTransitions implements JobStore {
  readonly #table: JobTable;
  readonly #now: () => number;
  readonly #newId: () => string;
  readonly #isClosed: () => boolean;

  constructor(table: JobTable, options: JobTransitionsOptions) {
    this.#table = table;
    this.#now = options.now;
    this.#newId = options.newId;
    this.#isClosed = options.isClosed ?? (() => false);
  }

  async createJob(input: NewJob): Promise<JobRecord> {
    const job = newJobRecord(input, this.#newId(), this.#now());
    await this.#run('createJob', () => this.#table.insert(job));
    return job;
  }

  async getJob(id: string): Promise<JobRecord | null> {
    return this.#run('getJob', () => this.#table.get(id));
  }

  async claimJob(id: string, options: ClaimOptions): Promise<JobRecord | null> {
    const { claimed, exhausted } = await this.#run('claimJob', () => this.#claim(id, options));
    if (exhausted) throw attemptsExhausted(exhausted);
    return claimed;
  }

  async claimNextJob(
    system: string,
    options: ClaimOptions & { readonly onExhausted?: (job: JobRecord) => void },
  ): Promise<JobRecord | null> {
    return this.#run('claimNextJob', async () => {
      // Each candidate is claimed by its own atomic update, which checks claimability again: a job another worker
      // took since the listing is skipped.
      for (const candidate of await this.#table.listClaimable(this.#now(), system)) {
        const { claimed, exhausted } = await this.#claim(candidate.id, options);
        if (exhausted) options.onExhausted?.(exhausted);
        if (claimed) return claimed;
      }
      return null;
    });
  }

  async heartbeatJob(id: string, options: ClaimOptions & { readonly progress?: JsonValue }): Promise<JobRecord | null> {
    return this.#update('heartbeatJob', id, (job) => {
      if (!holdsLease(job, options.owner)) return null;
      const now = this.#now();
      return {
        ...job,
        leaseExpiresAt: now + options.leaseMs,
        heartbeatAt: now,
        progress: options.progress === undefined ? job.progress : options.progress,
        updatedAt: now,
      };
    });
  }

  async completeJob(id: string, owner: string, result?: JsonValue): Promise<JobRecord | null> {
    return this.#update('completeJob', id, (job) => {
      if (!holdsLease(job, owner)) return null;
      return {
        ...job,
        status: 'done',
        result: result ?? null,
        leaseOwner: null,
        leaseExpiresAt: null,
        updatedAt: this.#now(),
      };
    });
  }

  async failJob(id: string, owner: string, error: JobError, options: FailJobOptions): Promise<JobRecord | null> {
    return this.#update('failJob', id, (job) => {
      if (!holdsLease(job, owner)) return null;
      const retry = options.retry && job.attempts < job.maxAttempts;
      return {
        ...job,
        status: retry ? 'queued' : 'failed',
        notBefore: retry ? (options.notBefore ?? 0) : job.notBefore,
        lastError: { code: error.code, message: error.message },
        leaseOwner: null,
        leaseExpiresAt: null,
        updatedAt: this.#now(),
      };
    });
  }

  async listJobs(filter: JobFilter = {}): Promise<JobRecord[]> {
    const statuses =
      filter.status === undefined ? undefined : typeof filter.status === 'string' ? [filter.status] : filter.status;
    if (statuses?.length === 0) return [];
    const limit = filter.limit === undefined ? undefined : Math.floor(filter.limit);
    if (limit !== undefined && limit <= 0) return [];
    const query: JobTableQuery = {
      ...(filter.system === undefined ? {} : { system: filter.system }),
      ...(filter.kind === undefined ? {} : { kind: filter.kind }),
      ...(statuses === undefined ? {} : { statuses }),
      ...(limit === undefined ? {} : { limit }),
    };
    return this.#run('listJobs', () => this.#table.list(query));
  }

  async listClaimableJobs(system?: string): Promise<JobRecord[]> {
    const now = this.#now();
    return this.#run('listClaimableJobs', async () =>
      // NOTE: a table may return a superset; the answer here is exact.
      (await this.#table.listClaimable(now, system)).filter((job) => isClaimable(job, now)),
    );
  }

  async pruneJobs(before: number): Promise<number> {
    return this.#run('pruneJobs', () => this.#table.deleteEnded(before));
  }

  /** One claim: the claimed job, or the job it marked failed because it was out of attempts, or neither. */
  async #claim(id: string, options: ClaimOptions): Promise<{ claimed: JobRecord | null; exhausted: JobRecord | null }> {
    const written = await this.#table.update(id, (job) => {
      const now = this.#now();
      if (!isClaimable(job, now)) return null;
      if (job.attempts >= job.maxAttempts) {
        return eraseEndedJobSecrets({
          ...job,
          status: 'failed',
          leaseOwner: null,
          leaseExpiresAt: null,
          lastError: { code: 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED', message: attemptsExhausted(job).message },
          updatedAt: now,
        });
      }
      return {
        ...job,
        status: 'running',
        attempts: job.attempts + 1,
        leaseOwner: options.owner,
        leaseExpiresAt: now + options.leaseMs,
        heartbeatAt: now,
        updatedAt: now,
      };
    });
    if (!written) return { claimed: null, exhausted: null };
    // A claim writes either a running job (claimed) or a failed one (found out of attempts).
    return written.status === 'running' ? { claimed: written, exhausted: null } : { claimed: null, exhausted: written };
  }

  /** One conditional update; every job it writes that has ended loses its secrets. */
  async #update(what: string, id: string, change: (job: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    return this.#run(what, () =>
      this.#table.update(id, (job) => {
        const next = change(job);
        // SECURITY: a job's secrets (a registry login) must not outlive it in the store.
        return next && eraseEndedJobSecrets(next);
      }),
    );
  }

  async #run<T>(what: string, body: () => Promise<T>): Promise<T> {
    if (this.#isClosed())
      throw new StoreError('SHIFTER_STORE_UNAVAILABLE', 'the metadata store is closed', { retryable: false });
    try {
      return await body();
    } catch (error) {
      if (ShifterError.isInstance(error)) throw error;
      throw new StoreError(
        'SHIFTER_STORE_UNAVAILABLE',
        `metadata store: ${what} failed: ${(error as Error)?.message ?? String(error)}`,
        { cause: error },
      );
    }
  }
}

/** Whether `owner` holds the running lease of `job` (expired or not: until another worker claims it, it is theirs). */
function holdsLease(job: JobRecord, owner: string): boolean {
  return job.status === 'running' && job.leaseOwner === owner;
}

/** Whether a job may be claimed at `now`: queued and due, or running with an expired lease. */
export function isClaimable(job: JobRecord, now: number): boolean {
  if (job.status === 'queued') return job.notBefore <= now;
  return job.status === 'running' && job.leaseExpiresAt !== null && job.leaseExpiresAt < now;
}

/** The error a claim raises (after marking the job failed) when the job is out of attempts. */
export function attemptsExhausted(job: Pick<JobRecord, 'id' | 'attempts' | 'maxAttempts'>): StoreError {
  return new StoreError('SHIFTER_JOB_ATTEMPTS_EXHAUSTED', `job ${job.id} used all ${job.maxAttempts} attempts`, {
    details: { jobId: job.id, attempts: job.attempts, maxAttempts: job.maxAttempts },
  });
}

/** Build a fresh job record from a request. @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT`. */
export function newJobRecord(input: NewJob, id: string, now: number): JobRecord {
  if (!(JOB_KINDS as readonly string[]).includes(input.kind)) invalid(`unknown job kind ${String(input.kind)}`);
  if (typeof input.system !== 'string' || input.system === '') invalid('job system must be a non-empty string');
  const maxAttempts = input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) invalid('maxAttempts must be an integer ≥ 1');
  return {
    id,
    kind: input.kind,
    system: input.system,
    payload: input.payload ?? null,
    status: 'queued',
    attempts: 0,
    maxAttempts,
    leaseOwner: null,
    leaseExpiresAt: null,
    heartbeatAt: null,
    notBefore: 0,
    lastError: null,
    progress: null,
    result: null,
    createdAt: now,
    updatedAt: now,
  };
}

function invalid(message: string): never {
  throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', message);
}
