/**
 * What lookups record, written in batches so that a lookup never waits for a write.
 *
 * @packageDocumentation
 */
import type { LookupMetric, MetadataStore } from '../metadata/index.js';

/** Buffered lookups are written at least this often (ms). */
export const LOOKUP_FLUSH_MS = 1000;
/** A buffer this large (metric rows plus expiration touches) is written at once. */
export const LOOKUP_FLUSH_ROWS = 500;
/**
 * Most metric rows held while the store is slower than the lookups (one batch is written at a time); past it the
 * oldest rows are dropped and counted, so a slow store costs metrics, never memory or lookup latency.
 */
export const LOOKUP_MAX_BUFFERED_ROWS = 100_000;

/** What a {@link LookupBatcher} needs. */
export interface LookupBatcherDeps {
  /** Where the batches go. */
  readonly store: Pick<MetadataStore, 'insertLookupMetrics' | 'update'>;
  /** Told about batches the store refused (they are dropped). */
  readonly logger: { warn(object: Record<string, unknown>, message: string): void };
  /** Flush interval in ms (default {@link LOOKUP_FLUSH_MS}). */
  readonly flushMs?: number;
  /** Cap on buffered metric rows (default {@link LOOKUP_MAX_BUFFERED_ROWS}). */
  readonly maxBufferedRows?: number;
}

/**
 * Collects lookup metrics and expiration touches (a lookup pushing a READY record's expiration forward) in memory and
 * writes them in one batch: after {@link LOOKUP_FLUSH_MS}, when {@link LOOKUP_FLUSH_ROWS} are buffered, or on
 * {@link flush}. Touches of one record collapse into one write of the latest expiration. One batch is written at a
 * time: what arrives meanwhile waits for the next one (so a slow store gets fewer, larger batches, never a pile of
 * concurrent ones), and at most {@link LOOKUP_MAX_BUFFERED_ROWS} metric rows wait (the oldest are dropped and the
 * drop is logged; the older half goes at once). Writes are best effort: a refused metrics batch is logged and dropped; a touch of a record deleted
 * meanwhile is dropped.
 *
 * NOTE: a process that dies loses at most one interval of metrics and touches; a lost touch only lets an image
 * expire up to one flush interval earlier than a lookup asked (lookups touch only when the expiration moved by more
 * than a minute).
 */
export class LookupBatcher {
  private metrics: LookupMetric[] = [];
  private touches = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly flushMs: number;
  private readonly maxBufferedRows: number;
  /** The batch being written, if any. */
  private writing: Promise<void> | undefined;
  /** Metric rows dropped since the last report. */
  private dropped = 0;

  constructor(private readonly deps: LookupBatcherDeps) {
    this.flushMs = deps.flushMs ?? LOOKUP_FLUSH_MS;
    this.maxBufferedRows = deps.maxBufferedRows ?? LOOKUP_MAX_BUFFERED_ROWS;
  }

  /** Buffer one lookup metric row. */
  recordMetric(row: LookupMetric): void {
    if (this.metrics.length >= this.maxBufferedRows) {
      // Drop the older half at once (constant cost per row, where dropping one row at a time would be linear).
      const keep = Math.floor(this.maxBufferedRows / 2);
      this.dropped += this.metrics.length - keep;
      this.metrics = this.metrics.slice(-keep);
    }
    this.metrics.push(row);
    this.schedule();
  }

  /** Buffer moving a record's expiration to `expiration` (the latest of several touches wins). */
  touchExpiration(recordId: string, expiration: number): void {
    const previous = this.touches.get(recordId);
    if (previous === undefined || expiration > previous) this.touches.set(recordId, expiration);
    this.schedule();
  }

  /**
   * Write everything buffered now, after the batch being written (if any). Resolves when what was buffered at the
   * call is written (or dropped). Never throws.
   */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.writing) await this.writing;
    if (this.metrics.length === 0 && this.touches.size === 0) return;
    this.writing = this.writeBatch().finally(() => {
      this.writing = undefined;
      // What arrived while this batch was written goes next, without waiting for the interval when it is large.
      if (this.metrics.length + this.touches.size > 0) this.schedule();
    });
    await this.writing;
  }

  private async writeBatch(): Promise<void> {
    if (this.dropped > 0) {
      this.deps.logger.warn({ rows: this.dropped }, 'dropped lookup metrics: the store is slower than the lookups');
      this.dropped = 0;
    }
    const rows = this.metrics;
    const touches = this.touches;
    this.metrics = [];
    this.touches = new Map();
    for (const [recordId, expiration] of touches) {
      await this.deps.store.update(recordId, { expiration }).catch(() => undefined);
    }
    if (rows.length === 0) return;
    try {
      await this.deps.store.insertLookupMetrics(rows);
    } catch (error) {
      this.deps.logger.warn({ err: error, rows: rows.length }, 'dropping lookup metrics');
    }
  }

  private schedule(): void {
    if (this.writing) return; // the batch in flight schedules the next one when it ends
    if (this.metrics.length + this.touches.size >= LOOKUP_FLUSH_ROWS) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.flushMs).unref();
  }
}
