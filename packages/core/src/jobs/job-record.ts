/**
 * The job record: one unit of background work (a pull, an import, an expiry) and its lease.
 *
 * Job state lives in the metadata store, not in the queue backend, so the in-process queue and the Redis queue
 * behave the same: a backend only wakes workers; the store's atomic {@link JobStore.claimJob} decides who runs
 * a job.
 *
 * @packageDocumentation
 */

/** Kinds of job the gateway runs. */
export const JOB_KINDS = ['pull', 'import', 'expire'] as const;
/** One job kind. */
export type JobKind = (typeof JOB_KINDS)[number];

/** Job states: `queued → running → done | failed`; `running → queued` again when a retryable attempt fails. */
export const JOB_STATUSES = ['queued', 'running', 'done', 'failed'] as const;
/** One job state. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** JSON-serialisable values (job payloads, results and progress are stored as JSON). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The error a job attempt ended with. */
export interface JobError {
  /** Stable code from the error catalogue. */
  readonly code: string;
  /** Client-safe message. */
  readonly message: string;
}

/** One job. */
export interface JobRecord {
  /** Store-assigned id (opaque string). */
  readonly id: string;
  /** What to do. */
  readonly kind: JobKind;
  /** System the job belongs to; workers process one system each. */
  readonly system: string;
  /**
   * What the handler needs (e.g. the image record id); opaque to the queue. A top-level `secrets` member of an
   * object payload (e.g. a registry login taken from the caller's credential) is erased by every store when the job
   * ends, done or failed, so secrets live no longer than the job that needs them.
   */
  readonly payload: JsonValue;
  /** Current state. */
  readonly status: JobStatus;
  /** Attempts started so far (incremented by every successful claim). */
  readonly attempts: number;
  /** Claims allowed in total; a claim past this marks the job failed with `SHIFTER_JOB_ATTEMPTS_EXHAUSTED`. */
  readonly maxAttempts: number;
  /** Worker id holding the lease while running; null otherwise. */
  readonly leaseOwner: string | null;
  /** Epoch ms the lease ends; a running job past it may be claimed by another worker. */
  readonly leaseExpiresAt: number | null;
  /** Epoch ms of the owner's last heartbeat. */
  readonly heartbeatAt: number | null;
  /** Epoch ms before which the job must not be claimed (retry back-off); 0 for "now". */
  readonly notBefore: number;
  /** Error of the last failed attempt (or of the final failure). */
  readonly lastError: JobError | null;
  /** Last progress the handler reported. */
  readonly progress: JsonValue;
  /** What the handler returned, once done. */
  readonly result: JsonValue;
  /** Epoch ms created. */
  readonly createdAt: number;
  /** Epoch ms of the last change. */
  readonly updatedAt: number;
}

/** What a caller supplies to create a job. */
export interface NewJob {
  /** What to do. */
  readonly kind: JobKind;
  /** System the job belongs to. */
  readonly system: string;
  /** Handler input; must be JSON. */
  readonly payload?: JsonValue;
  /** Total attempts allowed (default 3, at least 1). */
  readonly maxAttempts?: number;
}

/** Default number of attempts of a job. */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** The payload member that stores erase when a job ends (see {@link JobRecord.payload}). */
export const JOB_SECRETS_KEY = 'secrets';

/**
 * The job as it must be stored once it has ended: `payload.secrets` removed when the job is done or failed, the job
 * unchanged otherwise. Every {@link JobStore} applies this on each write that ends a job.
 */
export function eraseEndedJobSecrets(job: JobRecord): JobRecord {
  if (job.status !== 'done' && job.status !== 'failed') return job;
  const payload = job.payload;
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || !(JOB_SECRETS_KEY in payload))
    return job;
  const { [JOB_SECRETS_KEY]: _erased, ...rest } = payload as Record<string, JsonValue>;
  return { ...job, payload: rest };
}
