/**
 * The worker side of the image service: takes jobs from the queue, checks each payload against its kind's schema and
 * hands it to the job's handler; records failures on the image records.
 *
 * @packageDocumentation
 */
import { mkdir } from 'node:fs/promises';
import type { ShifterConfig } from '../config/index.js';
import { toShifterError } from '../errors/index.js';
import type { JobContext, JobKind, JobQueue, JobRecord, JsonValue } from '../jobs/index.js';
import { IN_FLIGHT_STATUSES, type MetadataStore } from '../metadata/index.js';
import type { Transfer } from '../transfer/index.js';
import { auditRecord } from './audit.js';
import type { ExpireJob } from './jobs/expire-job.js';
import { cleanScratch } from './jobs/image-placement.js';
import type { ImportJob } from './jobs/import-job.js';
import { parseJobPayload, payloadRecordId } from './jobs/job-payloads.js';
import type { PullJob } from './jobs/pull-job.js';
import type { ProgressReporter } from './progress-reporter.js';
import type { ServiceLogger } from './service-types.js';

/** The handler of each job kind. */
export interface JobHandlers {
  readonly pull: Pick<PullJob, 'runPull'>;
  readonly import: Pick<ImportJob, 'run'>;
  readonly expire: Pick<ExpireJob, 'run'>;
}

/** What an {@link ImageWorker} needs. */
export interface ImageWorkerDeps {
  /** The settings the worker reads. */
  readonly config: {
    readonly storage: Pick<ShifterConfig['storage'], 'expandDir'>;
    readonly queue: Pick<ShifterConfig['queue'], 'concurrency'>;
    readonly jobs: Pick<ShifterConfig['jobs'], 'leaseMs'>;
  };
  /** Record writes on failure. */
  readonly store: Pick<MetadataStore, 'update'>;
  /** Where jobs come from. */
  readonly queue: Pick<JobQueue, 'process'>;
  /** Transfer of each system (stale temp files are removed at start). */
  readonly transferFor: (system: string) => Pick<Transfer, 'cleanStale'>;
  /** Checks a system name ({@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`). */
  readonly system: (name: string) => unknown;
  /** Log sink. */
  readonly logger: ServiceLogger;
  /** Moves records to FAILURE. */
  readonly progress: Pick<ProgressReporter, 'fail'>;
  /** One handler per job kind. */
  readonly handlers: JobHandlers;
}

const auditName = (kind: JobKind): 'pull' | 'import' | 'expire' =>
  kind === 'import' ? 'import' : kind === 'expire' ? 'expire' : 'pull';

/** Runs the image service's jobs in this process. */
export class ImageWorker {
  constructor(private readonly deps: ImageWorkerDeps) {}

  /**
   * Run jobs of the given systems until the queue closes. Before taking jobs for a system it removes temp files a
   * crashed worker left in the image directory and in the scratch directory.
   */
  async start(systems: readonly string[]): Promise<void> {
    const { config, logger } = this.deps;
    await mkdir(config.storage.expandDir, { recursive: true });
    for (const system of systems) {
      this.deps.system(system);
      const removed = await this.deps.transferFor(system).cleanStale();
      const scratch = await cleanScratch(config.storage.expandDir, system);
      if (removed + scratch > 0) logger.info({ system, removed, scratch }, 'removed temp files left by a crash');
      await this.deps.queue.process(system, (job, context) => this.runJob(job, context), {
        concurrency: config.queue.concurrency,
        leaseMs: config.jobs.leaseMs,
        onFailed: (job) => this.onJobFailed(job),
      });
    }
  }

  /**
   * Run one job: check its payload, run its kind's handler, audit the outcome. A retryable failure with attempts
   * left notes the retry on the record.
   * @throws {@link ShifterError} `SHIFTER_JOB_PAYLOAD_INVALID` (not retryable) for a payload its kind does not
   *   accept; the handler's errors
   */
  async runJob(job: JobRecord, context: JobContext): Promise<JsonValue> {
    const recordId = payloadRecordId(job.payload);
    try {
      const { handlers } = this.deps;
      let result: JsonValue;
      if (job.kind === 'pull') result = await handlers.pull.runPull(job, parseJobPayload('pull', job.payload), context);
      else if (job.kind === 'import')
        result = await handlers.import.run(job, parseJobPayload('import', job.payload), context);
      else result = await handlers.expire.run(job, parseJobPayload(job.kind, job.payload));
      const imageId = (result as { imageId?: unknown } | null)?.imageId;
      auditRecord(this.deps.logger, `${auditName(job.kind)}.done`, null, {
        system: job.system,
        recordId,
        jobId: job.id,
        imageId: imageId ?? null,
      });
      return result;
    } catch (error) {
      const shifterError = toShifterError(error);
      this.deps.logger.warn(
        { err: error, jobId: job.id, kind: job.kind, code: shifterError.code, attempt: context.attempt },
        'job attempt failed',
      );
      if (recordId && shifterError.retryable && context.attempt < job.maxAttempts && job.kind !== 'expire') {
        await this.deps.store
          .update(
            recordId,
            {
              statusMessage: `attempt ${context.attempt} failed (${shifterError.code}: ${shifterError.message}); retrying`,
              progress: null,
            },
            { expectStatus: [...IN_FLIGHT_STATUSES] },
          )
          .catch(() => undefined);
      }
      throw shifterError;
    }
  }

  /** A job ended `failed`: move its record to FAILURE with the job's error. */
  async onJobFailed(job: JobRecord): Promise<void> {
    const recordId = payloadRecordId(job.payload);
    if (!recordId) return;
    let error = job.lastError ?? {
      code: 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED',
      message: 'the job failed on every allowed attempt',
    };
    // A claim marks a job exhausted only when its last lease ran out: the worker holding it died on every attempt
    // (a handler's own failure is recorded by the runner with its code). Such a job gets its own code.
    if (error.code === 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED') {
      error = {
        code: 'SHIFTER_JOB_WORKER_LOST',
        message: `the worker died while running this ${job.kind} on all ${job.maxAttempts} attempts`,
      };
    }
    auditRecord(this.deps.logger, `${auditName(job.kind)}.failed`, null, {
      system: job.system,
      recordId,
      jobId: job.id,
      code: error.code,
    });
    if (job.kind === 'expire') {
      await this.deps.store
        .update(
          recordId,
          { status: 'FAILURE', error, statusMessage: `${error.code}: ${error.message}` },
          { expectStatus: 'EXPIRING' },
        )
        .catch(() => undefined);
      return;
    }
    await this.deps.progress.fail(recordId, error);
  }
}
