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

/** What a {@link LookupBatcher} needs. */
export interface LookupBatcherDeps {
  /** Where the batches go. */
  readonly store: Pick<MetadataStore, 'insertLookupMetrics' | 'update'>;
  /** Told about batches the store refused (they are dropped). */
  readonly logger: { warn(object: Record<string, unknown>, message: string): void };
  /** Flush interval in ms (default {@link LOOKUP_FLUSH_MS}). */
  readonly flushMs?: number;
}

/**
 * Collects lookup metrics and expiration touches (a lookup pushing a READY record's expiration forward) in memory and
 * writes them in one batch: after {@link LOOKUP_FLUSH_MS}, when {@link LOOKUP_FLUSH_ROWS} are buffered, or on
 * {@link flush}. Touches of one record collapse into one write of the latest expiration. Writes are best effort: a
 * refused metrics batch is logged and dropped; a touch of a record deleted meanwhile is dropped.
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

  constructor(private readonly deps: LookupBatcherDeps) {
    this.flushMs = deps.flushMs ?? LOOKUP_FLUSH_MS;
  }

  /** Buffer one lookup metric row. */
  recordMetric(row: LookupMetric): void {
    this.metrics.push(row);
    this.schedule();
  }

  /** Buffer moving a record's expiration to `expiration` (the latest of several touches wins). */
  touchExpiration(recordId: string, expiration: number): void {
    const previous = this.touches.get(recordId);
    if (previous === undefined || expiration > previous) this.touches.set(recordId, expiration);
    this.schedule();
  }

  /** Write everything buffered now. Never throws. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
    if (this.metrics.length + this.touches.size >= LOOKUP_FLUSH_ROWS) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.flushMs).unref();
  }
}
