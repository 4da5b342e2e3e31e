/**
 * The metadata store: the gateway's persistent state, by concern — image records and tags ({@link ImageStore}),
 * lookup metrics ({@link LookupMetricsStore}) and the job table ({@link JobStore}) — plus its lifecycle.
 *
 * Two implementations ship: `SqliteMetadataStore` (embedded, persistent default) in `@shifter/core` and
 * `MongoMetadataStore` in `@shifter/core/mongo`. Both pass `describeMetadataStoreContract` from
 * `@shifter/core/testing`, which runs the contract suite of each part. Code that needs one concern only takes that
 * interface (the job queues take a {@link JobStore}); the composition root and site scripts hold the whole store.
 *
 * Errors every implementation reports the same way (sentinels): see each part. In short `SHIFTER_IMAGE_NOT_FOUND`
 * and `SHIFTER_JOB_NOT_FOUND` ({@link NotFoundError}); `SHIFTER_JOB_CONFLICT`, `SHIFTER_JOB_ATTEMPTS_EXHAUSTED` and
 * `SHIFTER_STORE_UNAVAILABLE` ({@link StoreError}).
 *
 * @packageDocumentation
 */
// Imported for TSDoc links only.
import type { NotFoundError, StoreError } from '../errors/index.js';
import type { JobStore } from '../jobs/job-store.js';
import type { ImageStore } from './image-store.js';
import type { LookupMetricsStore } from './lookup-metrics-store.js';

/**
 * Persistent state of the image gateway: one object that is an {@link ImageStore}, a {@link LookupMetricsStore} and
 * a {@link JobStore}, and owns the connection or file behind them. Implementations are safe for concurrent use by
 * many callers in one process and, for shared backends (MongoDB), by many processes.
 *
 * @see {@link NotFoundError} {@link StoreError}
 */
export interface MetadataStore extends ImageStore, LookupMetricsStore, JobStore {
  /** Release connections and file handles. Idempotent. Other methods must not be called afterwards. */
  close(): Promise<void>;
}

/** Options common to every store implementation. */
export interface MetadataStoreOptions {
  /** Clock (epoch ms); tests inject one to exercise leases and expiry. Default `Date.now`. */
  readonly now?: () => number;
}
