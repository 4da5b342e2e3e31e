/**
 * The embedded job queue: workers run in the gateway process; the metadata store holds every job, so jobs survive a
 * restart (on start, queued and lease-expired jobs are dispatched again).
 *
 * @packageDocumentation
 */
import type { JobStore } from './job-store.js';
import type { CloseOptions, JobHandler, JobQueue, ProcessOptions } from './job-queue.js';
import type { JobRecord, NewJob } from './job-record.js';
import { JobRunner, newWorkerId, resolveProcessOptions } from './job-runner.js';
import { systemJobClock, type JobClock, type JobTimer } from './job-clock.js';
import { ShifterError } from '../errors/index.js';

/** Options of {@link InProcessJobQueue}. */
export interface InProcessJobQueueOptions {
  /** Worker id owning the leases (default `<host>:<pid>:<random>`). */
  readonly workerId?: string;
  /**
   * How often to look for claimable jobs besides the wake-ups from {@link InProcessJobQueue.enqueue}, ms (default
   * `min(leaseMs / 2, 5000)`): this is what takes over jobs whose worker died and runs retries that are due.
   */
  readonly sweepIntervalMs?: number;
  /**
   * The time and timers of sweeps, heartbeats, retry back-offs and close time-outs (default: the system clock).
   * Tests pass a clock they move by hand; the metadata store should then take its `now` from the same clock.
   */
  readonly clock?: JobClock;
}

interface SystemWorker {
  readonly runner: JobRunner;
  readonly sweeper: JobTimer;
  pumping: boolean;
  again: boolean;
  readonly retryTimers: Set<JobTimer>;
}

/**
 * {@link JobQueue} running handlers in this process.
 *
 * @example
 * ```ts
 * const queue = new InProcessJobQueue(store);
 * await queue.process('demo', async (job, { signal, heartbeat }) => { … }, { concurrency: 2 });
 * await queue.enqueue({ kind: 'pull', system: 'demo', payload: { recordId } });
 * ```
 */
export class InProcessJobQueue implements JobQueue {
  readonly #store: JobStore;
  readonly #workerId: string;
  readonly #sweepIntervalMs: number | undefined;
  readonly #clock: JobClock;
  readonly #workers = new Map<string, SystemWorker>();
  #closed = false;

  /** @param store - where job state lives; the queue does not close it */
  constructor(store: JobStore, options: InProcessJobQueueOptions = {}) {
    this.#store = store;
    this.#workerId = options.workerId ?? newWorkerId();
    this.#sweepIntervalMs = options.sweepIntervalMs;
    this.#clock = options.clock ?? systemJobClock;
  }

  async enqueue(job: NewJob): Promise<JobRecord> {
    const record = await this.#store.createJob(job);
    this.#pump(record.system);
    return record;
  }

  async process(system: string, handler: JobHandler, options?: ProcessOptions): Promise<void> {
    if (this.#closed) throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'the job queue is closed');
    if (this.#workers.has(system)) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `this queue already processes system ${system}`);
    }
    const resolved = resolveProcessOptions(options);
    const runner = new JobRunner(this.#store, handler, resolved, this.#workerId, this.#clock);
    const interval = this.#sweepIntervalMs ?? Math.min(Math.floor(resolved.leaseMs / 2), 5000);
    const worker: SystemWorker = {
      runner,
      sweeper: this.#clock.setInterval(() => this.#pump(system), Math.max(10, interval)),
      pumping: false,
      again: false,
      retryTimers: new Set(),
    };
    this.#workers.set(system, worker);
    // Fail fast if the store is unreachable, then dispatch what a previous run left behind.
    await this.#store.listClaimableJobs(system);
    this.#pump(system);
  }

  /** Claim and start jobs until the concurrency bound or no claimable job is left. Re-entrant calls coalesce. */
  #pump(system: string): void {
    const worker = this.#workers.get(system);
    if (!worker || this.#closed) return;
    if (worker.pumping) {
      worker.again = true;
      return;
    }
    worker.pumping = true;
    void (async () => {
      try {
        do {
          worker.again = false;
          while (!this.#closed && worker.runner.hasCapacity) {
            const exhausted: JobRecord[] = [];
            const job = await this.#store.claimNextJob(system, {
              owner: this.#workerId,
              leaseMs: worker.runner.leaseMs,
              onExhausted: (j) => void exhausted.push(j),
            });
            for (const j of exhausted) await worker.runner.reportExhausted(j);
            if (!job) break;
            void worker.runner.run(job).then((outcome) => {
              if (outcome === 'retry') this.#scheduleRetry(system, worker);
              this.#pump(system);
            });
          }
        } while (worker.again && !this.#closed);
      } catch (error) {
        console.error(`shifter in-process queue: dispatch for ${system} failed (will retry on the next sweep):`, error);
      } finally {
        worker.pumping = false;
      }
    })();
  }

  #scheduleRetry(system: string, worker: SystemWorker): void {
    // The sweeper would find the job too; a timer at the back-off's end keeps retries prompt.
    void this.#store
      .listJobs({ system, status: 'queued' })
      .then((jobs) => {
        const next = Math.min(...jobs.map((j) => j.notBefore));
        if (!Number.isFinite(next) || this.#closed) return;
        const timer = this.#clock.setTimeout(
          () => {
            worker.retryTimers.delete(timer);
            this.#pump(system);
          },
          Math.max(0, next - this.#clock.now()) + 5,
        );
        worker.retryTimers.add(timer);
      })
      .catch(() => undefined);
  }

  async close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const worker of this.#workers.values()) {
      this.#clock.clearTimer(worker.sweeper);
      for (const timer of worker.retryTimers) this.#clock.clearTimer(timer);
    }
    await Promise.all([...this.#workers.values()].map((worker) => worker.runner.close(options.timeoutMs)));
  }
}
