/**
 * Progress of in-flight image records: state changes written at once, progress within a state throttled.
 *
 * @packageDocumentation
 */
import type { JobContext } from '../jobs/index.js';
import {
  IN_FLIGHT_STATUSES,
  type ImageProgress,
  type ImageRecord,
  type ImageRecordPatch,
  type ImageStatus,
  type MetadataStore,
} from '../metadata/index.js';

/** Shortest interval between two progress writes of one record within one state. */
export const PROGRESS_INTERVAL_MS = 250;

/** What a {@link ProgressReporter} needs. */
export interface ProgressReporterDeps {
  /** Where records are written (conditional on the record being in flight). */
  readonly store: Pick<MetadataStore, 'update'>;
  /** Clock in epoch ms. */
  readonly now: () => number;
}

/**
 * Writes the state and progress of in-flight image records for the jobs of one worker process. Every write expects
 * the record to be in flight (a record some other party finished is left alone). {@link report} drops progress
 * within the same state written less than {@link PROGRESS_INTERVAL_MS} after the previous write, so a download
 * emitting thousands of events costs a few writes a second.
 */
export class ProgressReporter {
  private readonly writtenAt = new Map<string, number>();
  private readonly statusOf = new Map<string, ImageStatus>();

  constructor(private readonly deps: ProgressReporterDeps) {}

  /**
   * Move a record to `status` now and wait for the write.
   * @throws {@link StoreError} `SHIFTER_JOB_CONFLICT` when the record is no longer in flight
   */
  async setState(
    recordId: string,
    status: ImageStatus,
    progress: ImageProgress | null,
    extra: ImageRecordPatch = {},
  ): Promise<ImageRecord> {
    this.writtenAt.set(recordId, this.deps.now());
    this.statusOf.set(recordId, status);
    return this.deps.store.update(
      recordId,
      { status, progress, statusMessage: progress?.step ?? status, lastHeartbeat: this.deps.now(), ...extra },
      { expectStatus: [...IN_FLIGHT_STATUSES] },
    );
  }

  /**
   * Record progress without waiting (throttled; failures ignored) and heartbeat the job with it. A change of state
   * is always written.
   */
  report(recordId: string, status: ImageStatus, progress: ImageProgress, context: Pick<JobContext, 'heartbeat'>): void {
    const last = this.writtenAt.get(recordId) ?? 0;
    if (this.statusOf.get(recordId) === status && this.deps.now() - last < PROGRESS_INTERVAL_MS) return;
    this.statusOf.set(recordId, status);
    this.writtenAt.set(recordId, this.deps.now());
    void this.deps.store
      .update(
        recordId,
        { status, progress, statusMessage: progress.step, lastHeartbeat: this.deps.now() },
        { expectStatus: [...IN_FLIGHT_STATUSES] },
      )
      .catch(() => undefined);
    void context.heartbeat({ status, step: progress.step }).catch(() => undefined);
  }

  /** Move an in-flight record to FAILURE with `error` (ignored when it is no longer in flight). */
  async fail(recordId: string, error: { readonly code: string; readonly message: string }): Promise<void> {
    await this.deps.store
      .update(
        recordId,
        {
          status: 'FAILURE',
          error: { code: error.code, message: error.message },
          progress: null,
          statusMessage: `${error.code}: ${error.message}`,
        },
        { expectStatus: [...IN_FLIGHT_STATUSES] },
      )
      .catch(() => undefined);
    this.forget(recordId);
  }

  /** Drop what is remembered of a record (its job ended). */
  forget(recordId: string): void {
    this.writtenAt.delete(recordId);
    this.statusOf.delete(recordId);
  }
}
