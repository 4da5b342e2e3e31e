/**
 * Where a job queue takes its time from.
 *
 * @packageDocumentation
 */

/** A timer made by a {@link JobClock}; only that clock's {@link JobClock.clearTimer} understands it. */
export type JobTimer = unknown;

/**
 * The current time and the timers of a job queue: lease heartbeats, sweeps for claimable jobs, retry back-offs and
 * the time-out of `close`. Production code uses the system clock (the default); a test passes a clock it moves by hand
 * (`ManualClock` in `@shifter/core/testing`), so those things happen when the test says so instead of after the
 * test has waited for them.
 */
export interface JobClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Call `callback` once, `ms` from now. */
  setTimeout(callback: () => void, ms: number): JobTimer;
  /** Call `callback` every `ms`. */
  setInterval(callback: () => void, ms: number): JobTimer;
  /** Cancel a timer of this clock (either kind); a timer that already fired or was cancelled is ignored. */
  clearTimer(timer: JobTimer): void;
}

/** The system clock and Node's timers. */
export const systemJobClock: JobClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  setInterval: (callback, ms) => setInterval(callback, ms),
  // Node's clearTimeout cancels intervals too.
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
