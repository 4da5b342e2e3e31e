/**
 * The image service: the one module that knows image states. The gateway's routes call it; workers run its jobs.
 *
 * Pull: `INIT → PENDING → PULLING → [EXAMINATION] → CONVERSION → TRANSFER → READY | FAILURE`; import:
 * `PENDING → HASHING → TRANSFER → READY`; expiry `EXPIRING → EXPIRED`. Deduplication rests on the store's
 * {@link MetadataStore.createOrGetInFlight}: one in-flight record per (system, itype, tag), so concurrent requests
 * share one job, and a request that finds a job in flight never touches the registry.
 *
 * {@link ImageService} is a facade. The work is done by:
 * - `image-requests.ts` — the request side (lookup, list, pull, import, expiry, metrics, queue);
 * - `image-worker.ts` — takes jobs, validates their payloads (`jobs/job-payloads.ts`), records failures;
 * - `jobs/pull-job.ts`, `jobs/import-job.ts`, `jobs/expire-job.ts` — one handler per job kind, each with a small
 *   explicit dependency object; `jobs/image-placement.ts` holds the steps pulls and imports share;
 * - `progress-reporter.ts` (state writes, progress throttling), `lookup-batcher.ts` (lookup metrics and expiration
 *   touches written in batches), `run-program.ts` (the examiner, reading a file as its owner), `image-tags.ts`.
 *
 * @packageDocumentation
 */
import type { ShifterConfig, SystemConfig } from '../config/index.js';
import type { JobContext, JobQueue, JobRecord, JsonValue } from '../jobs/index.js';
import type { ImageRecord, LookupMetric, MetadataStore } from '../metadata/index.js';
import type { Transfer } from '../transfer/index.js';
import type { Caller } from './caller.js';
import { parseExpirationTimeout } from './expiration.js';
import type { ImagePuller } from './image-puller.js';
import { ImageRequests } from './image-requests.js';
import { ImageTags, requireSystem } from './image-tags.js';
import { ImageWorker } from './image-worker.js';
import { ExpireJob } from './jobs/expire-job.js';
import { ImagePlacement } from './jobs/image-placement.js';
import { ImportJob } from './jobs/import-job.js';
import { PullJob } from './jobs/pull-job.js';
import { LookupBatcher } from './lookup-batcher.js';
import { ProgressReporter } from './progress-reporter.js';
import { defaultReadFileAs, type ReadFileAs } from './run-program.js';
import type { ImportReadOptions } from './import-reader.js';
import {
  silentLogger,
  type AclRequest,
  type ImportCaller,
  type ImportRequest,
  type QueueEntry,
  type ServiceLogger,
} from './service-types.js';

export { FAILURE_HOLD_MS, pickLogin } from './image-requests.js';
export type { AclRequest, ImportCaller, ImportRequest, QueueEntry, ServiceLogger } from './service-types.js';

/** Options of {@link ImageService}. */
export interface ImageServiceOptions {
  /** Validated configuration. */
  readonly config: ShifterConfig;
  /** Image records, metrics and jobs. The service does not close it. */
  readonly store: MetadataStore;
  /** Dispatches jobs. The service does not close it. */
  readonly queue: JobQueue;
  /** Transfer of each system (called on workers only). */
  readonly transferFor: (system: string) => Transfer;
  /** Registry side of pulls (called on workers only). */
  readonly puller: ImagePuller;
  /** Clock in epoch ms (tests). */
  readonly now?: () => number;
  /** Log sink. */
  readonly logger?: ServiceLogger;
  /**
   * Copies a file to import, reading it as the caller (see {@link copyFileAsCaller}, the default: regular files
   * only, checked on the open descriptor, up to `limits.maxImportBytes`, under `limits.importTimeoutMs` and the
   * job's signal).
   */
  readonly readFileAs?: (
    caller: ImportCaller,
    path: string,
    destination: string,
    options: ImportReadOptions,
  ) => Promise<unknown>;
}

/**
 * Orchestrates pulls, imports, lookups and expiry over a {@link MetadataStore}, a {@link JobQueue}, transfers and a
 * puller. Request methods (`pull`, `lookup`, …) run in `serve` processes; {@link ImageService.startWorkers} runs the
 * jobs (in the same process on the embedded deployment, in `worker` processes otherwise).
 *
 * Lookups never wait for a write: the lookup metrics and the expiration a lookup pushes forward are written in
 * batches (at least every second, and by {@link ImageService.flushMetrics} and {@link ImageService.close}).
 */
export class ImageService {
  readonly config: ShifterConfig;
  private readonly tags: ImageTags;
  private readonly batcher: LookupBatcher;
  private readonly requests: ImageRequests;
  private readonly worker: ImageWorker;

  constructor(options: ImageServiceOptions) {
    const config = options.config;
    const store = options.store;
    const now = options.now ?? Date.now;
    const logger = options.logger ?? silentLogger;
    const expirationMs = parseExpirationTimeout(config.jobs.imageExpirationTimeout);
    const expirationFrom = (time: number): number => time + expirationMs;
    const system = (name: string): SystemConfig => requireSystem(config, name);
    const readFileAs: ReadFileAs = options.readFileAs ?? defaultReadFileAs;
    this.config = config;
    this.tags = new ImageTags(config);
    this.batcher = new LookupBatcher({ store, logger });
    const progress = new ProgressReporter({ store, now });
    const placement = new ImagePlacement({
      store,
      expandDir: config.storage.expandDir,
      expirationFrom,
      forgetProgress: (recordId) => progress.forget(recordId),
    });
    this.requests = new ImageRequests({
      config,
      store,
      queue: options.queue,
      now,
      logger,
      tags: this.tags,
      system,
      expirationFrom,
      batcher: this.batcher,
      failRecord: (recordId, error) => progress.fail(recordId, error),
    });
    this.worker = new ImageWorker({
      config,
      store,
      queue: options.queue,
      transferFor: options.transferFor,
      system,
      logger,
      progress,
      handlers: {
        pull: new PullJob({
          config,
          store,
          transferFor: options.transferFor,
          puller: options.puller,
          now,
          system,
          referenceOf: (tag) => this.tags.parseDocker(tag).reference,
          expirationFrom,
          progress,
          placement,
        }),
        import: new ImportJob({
          config,
          store,
          transferFor: options.transferFor,
          system,
          readFileAs,
          now,
          expirationFrom,
          progress,
          placement,
        }),
        expire: new ExpireJob({ store, transferFor: options.transferFor }),
      },
    });
  }

  // ----- configuration ------------------------------------------------------------------------------------------

  /** Names of configured systems. */
  systems(): string[] {
    return Object.keys(this.config.systems);
  }

  /**
   * The config of a system.
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`
   */
  system(name: string): SystemConfig {
    return requireSystem(this.config, name);
  }

  /** Whether the caller is an admin of the system (by user name, exact match). */
  isAdmin(system: string, caller: Pick<Caller, 'user'>): boolean {
    return this.requests.isAdmin(system, caller);
  }

  /**
   * Validate and normalise an image tag for a type.
   * @throws {@link ShifterError} `SHIFTER_REF_INVALID` for a malformed tag; `SHIFTER_USAGE_INVALID_ARGUMENT` for an
   *   unknown image type
   */
  normalizeTag(itype: string, tag: string): string {
    return this.tags.normalize(itype, tag);
  }

  // ----- requests -----------------------------------------------------------------------------------------------

  /**
   * Look up a READY image by tag and push its expiration forward (every lookup counts as use). Read-only: the new
   * expiration (when it moved by more than a minute) and the lookup metric are written later, in a batch; the
   * returned record already shows the new expiration.
   *
   * @param system - system name
   * @param itype - `docker` or `custom`
   * @param tag - image tag
   * @param caller - verified caller
   * @returns the caller's view of the READY record (only the tags they may see; see {@link viewFor})
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`; `SHIFTER_IMAGE_NOT_FOUND` when absent or the tag is
   *   private to others (both look the same, so private images do not leak); `SHIFTER_REF_INVALID` for a malformed tag
   */
  lookup(system: string, itype: string, tag: string, caller: Caller): Promise<ImageRecord> {
    return this.requests.lookup(system, itype, tag, caller);
  }

  /**
   * READY images of a system the caller may see, each as the caller's view: only the tags they may see (see
   * {@link viewFor}).
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`
   */
  list(system: string, caller: Caller): Promise<ImageRecord[]> {
    return this.requests.list(system, caller);
  }

  /**
   * Start or join a pull. Idempotent: a pull in flight for the tag with the same registry login (anonymous callers
   * share one) is returned (the registry is not contacted); a READY image newer than `pullUpdateTimeout` whose tag the
   * caller may see is returned without a job; a FAILURE of the last {@link FAILURE_HOLD_MS} made with the same login
   * is returned so pollers see it (for a retryable registry failure the READY image, if any, keeps being served
   * instead); otherwise a new job starts. A caller never joins, nor inherits the failure of, an attempt made with
   * another login, so nobody can deny a tag to others by failing first. Everything returned is the caller's view
   * ({@link viewFor}).
   *
   * @param system - system name
   * @param itype - must be `docker`
   * @param tag - image tag
   * @param caller - verified caller; its `authorizedLocations` supply registry credentials
   * @param acl - `allowed_uids` / `allowed_gids`
   * @returns the record the caller should watch (in flight, READY or FAILURE)
   * @throws `SHIFTER_SYSTEM_UNKNOWN`, `SHIFTER_REF_INVALID`, `SHIFTER_USAGE_INVALID_ARGUMENT` (type), store errors
   */
  pull(system: string, itype: string, tag: string, caller: Caller, acl: AclRequest = {}): Promise<ImageRecord> {
    return this.requests.pull(system, itype, tag, caller, acl);
  }

  /**
   * Import a squashfs file the caller can read on the target system. Allowed by `importUsers` (per system, else
   * global): `"all"`, `"none"` or a list of user names.
   *
   * @returns the in-flight (or existing in-flight) record
   * @throws {@link AuthError} `SHIFTER_IMPORT_NOT_ALLOWED`; `SHIFTER_SYSTEM_UNKNOWN`, `SHIFTER_REF_INVALID`,
   *   `SHIFTER_USAGE_INVALID_ARGUMENT`
   */
  importImage(
    system: string,
    itype: string,
    tag: string,
    caller: Caller,
    request: ImportRequest,
  ): Promise<ImageRecord> {
    return this.requests.importImage(system, itype, tag, caller, request);
  }

  /**
   * Admin: expire an image by tag. The record goes to EXPIRING now; a job removes the files (`.meta` first) and
   * marks it EXPIRED.
   * @returns true when expiry started (false when it was already expiring)
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN` for non-admins; `SHIFTER_IMAGE_NOT_FOUND`
   */
  expire(system: string, itype: string, tag: string, caller: Caller): Promise<boolean> {
    return this.requests.expire(system, itype, tag, caller);
  }

  /**
   * Admin: expire every READY image of the system whose expiration has passed, delete FAILURE records older than
   * `pullUpdateTimeout`, and fail in-flight records whose job is gone or finished (stuck records). Writes this
   * process's batched lookups first.
   * @returns image ids whose expiry started
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN`; `SHIFTER_SYSTEM_UNKNOWN`
   */
  autoexpire(system: string, caller: Caller): Promise<string[]> {
    return this.requests.autoexpire(system, caller);
  }

  /**
   * Admin: the last `limit` lookups of a system (newest last); empty when `metrics` is off.
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN`; `SHIFTER_SYSTEM_UNKNOWN`
   */
  metrics(system: string, caller: Caller, limit: number): Promise<LookupMetric[]> {
    return this.requests.metrics(system, caller, limit);
  }

  /**
   * Pulls and imports in flight on a system that `caller` may see: their own (or ones naming them in their ACL), and
   * ones known to be public (resolved public, or pulls without a registry login). Others' private requests are not
   * listed, not even by tag. Without a caller (internal use) every entry is listed.
   * @throws `SHIFTER_SYSTEM_UNKNOWN`
   */
  queue(system: string, caller?: Caller): Promise<QueueEntry[]> {
    return this.requests.queue(system, caller);
  }

  /** Write buffered lookups now: metrics and expiration touches. Called by {@link close}. */
  flushMetrics(): Promise<void> {
    return this.batcher.flush();
  }

  /** Flush buffered lookups. Does not close the store or the queue (their owner does). */
  async close(): Promise<void> {
    await this.batcher.flush();
  }

  // ----- workers ------------------------------------------------------------------------------------------------

  /**
   * Run jobs of the given systems in this process until the queue closes. Before taking jobs for a system it
   * removes temp files a crashed worker left in the image directory and in the scratch directory.
   * @param systems - system names (default: all)
   */
  startWorkers(systems: readonly string[] = this.systems()): Promise<void> {
    return this.worker.start(systems);
  }

  /**
   * Run one job (the handler given to the queue). Idempotent: a record no longer in flight is left alone; every
   * step can be redone after a crash.
   * @throws {@link ShifterError} `SHIFTER_JOB_PAYLOAD_INVALID` (not retryable) when the payload does not match its
   *   kind's schema; the job's own errors
   */
  runJob(job: JobRecord, context: JobContext): Promise<JsonValue> {
    return this.worker.runJob(job, context);
  }
}
