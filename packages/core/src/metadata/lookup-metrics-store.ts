/**
 * The lookup-metrics part of the metadata store: one row per lookup the gateway answered, kept for the
 * `/api/metrics` view. `describeLookupMetricsStoreContract` in `@shifter/core/testing` is the executable form of
 * this contract.
 *
 * @packageDocumentation
 */
import type { LookupMetric } from './image-record.js';

/** Lookup metrics: an append-only log per system, read back newest last. */
export interface LookupMetricsStore {
  /** Append metric rows (one batched write). Empty input is a no-op. */
  insertLookupMetrics(rows: readonly LookupMetric[]): Promise<void>;

  /** The last `limit` rows of a system by time, in ascending time order (the newest is last). */
  listLookupMetrics(system: string, limit: number): Promise<LookupMetric[]>;
}
