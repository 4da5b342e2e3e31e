import type { JobClock, JobTimer } from '../jobs/job-clock.js';

interface PendingTimer {
  readonly id: number;
  due: number;
  readonly intervalMs: number | null;
  readonly callback: () => void;
}

/**
 * A {@link JobClock} that only moves when a test calls {@link ManualClock.advance}: its timers never fire on their
 * own, so a test sees a lease heartbeat, a sweep or a close time-out exactly when it asks for one and never waits
 * for wall-clock time.
 *
 * @example
 * ```ts
 * const clock = new ManualClock();
 * const store = new SqliteMetadataStore({ path: ':memory:', now: () => clock.now() });
 * const queue = new InProcessJobQueue(store, { clock });
 * // … a worker took a job with a 30 s lease and died:
 * clock.advance(30_001); // the lease is over and the sweeper runs: another worker takes the job over
 * ```
 */
export class ManualClock implements JobClock {
  readonly #base: () => number;
  #offset = 0;
  #nextId = 1;
  readonly #timers = new Map<number, PendingTimer>();

  /**
   * @param base - where the time starts from: a fixed instant (default: the wall clock when the clock is made), or
   *   a function such as `Date.now` for a clock that keeps up with the wall clock and runs `advance`d ms ahead of it
   *   (for suites that also run against backends with real timers)
   */
  constructor(base: number | (() => number) = Date.now()) {
    this.#base = typeof base === 'number' ? () => base : base;
  }

  /** The base time plus every {@link ManualClock.advance} so far. */
  now(): number {
    return this.#base() + this.#offset;
  }

  setTimeout(callback: () => void, ms: number): JobTimer {
    return this.#add(callback, ms, null);
  }

  setInterval(callback: () => void, ms: number): JobTimer {
    return this.#add(callback, ms, Math.max(1, ms));
  }

  clearTimer(timer: JobTimer): void {
    if (typeof timer === 'number') this.#timers.delete(timer);
  }

  /** Timers armed and neither fired (time-outs) nor cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Move the time `ms` forward, then fire the timers due by then, earliest first, each at most once per call: an
   * interval that fell due several times fires once and is due again `intervalMs` after the new time. Timers that
   * the callbacks arm wait for the next call. `advance(0)` fires what is due now (a time-out of 0 ms).
   */
  advance(ms = 0): void {
    if (!(ms >= 0)) throw new RangeError(`a clock only moves forward, got ${ms} ms`);
    this.#offset += ms;
    const now = this.now();
    const due = [...this.#timers.values()].filter((timer) => timer.due <= now).sort((a, b) => a.due - b.due);
    for (const timer of due) {
      if (!this.#timers.has(timer.id)) continue; // cleared by an earlier callback
      if (timer.intervalMs === null) this.#timers.delete(timer.id);
      else timer.due = now + timer.intervalMs;
      timer.callback();
    }
  }

  #add(callback: () => void, ms: number, intervalMs: number | null): number {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.now() + Math.max(0, ms), intervalMs, callback });
    return id;
  }
}
