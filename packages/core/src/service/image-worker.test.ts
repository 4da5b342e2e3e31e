import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobContext, JobRecord, JsonValue } from '../jobs/index.js';
import { ImageWorker, type JobHandlers } from './image-worker.js';
import { MemoryRecords } from './jobs/jobs.test-support.js';
import { ProgressReporter } from './progress-reporter.js';
import { silentLogger } from './service-types.js';

// The worker's dispatch: payloads are checked against their kind's schema before any handler runs.

const context: JobContext = {
  signal: new AbortController().signal,
  workerId: 'w',
  attempt: 1,
  heartbeat: async () => {},
};

let dir: string;
let store: MemoryRecords;
let ran: { kind: string; payload: unknown }[];

function worker(): ImageWorker {
  const handler =
    (kind: string) =>
    async (_job: JobRecord, payload: unknown): Promise<JsonValue> => {
      ran.push({ kind, payload });
      return { imageId: 'i' };
    };
  const handlers: JobHandlers = {
    pull: { runPull: handler('pull') },
    import: { run: handler('import') },
    expire: { run: handler('expire') },
  };
  return new ImageWorker({
    config: { storage: { expandDir: dir }, queue: { concurrency: 1 }, jobs: { leaseMs: 30_000 } },
    store,
    queue: { process: async () => {} },
    transferFor: () => ({ cleanStale: async () => 0 }),
    system: () => ({}),
    logger: silentLogger,
    progress: new ProgressReporter({ store, now: () => 1 }),
    handlers,
  });
}

const jobOf = (kind: JobRecord['kind'], payload: JsonValue, lastError: JobRecord['lastError'] = null): JobRecord =>
  ({ id: 'j1', kind, system: 'cluster', payload, maxAttempts: 3, lastError }) as JobRecord;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shifter-worker-'));
  store = new MemoryRecords();
  ran = [];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ImageWorker', () => {
  it('hands a valid payload to its kind’s handler', async () => {
    expect(await worker().runJob(jobOf('expire', { recordId: 'r1' }), context)).toEqual({ imageId: 'i' });
    expect(ran).toEqual([{ kind: 'expire', payload: { recordId: 'r1' } }]);
  });

  it('fails a job whose payload its kind does not accept, for good, and its record with the code', async () => {
    const record = store.add({ status: 'PENDING' });
    const job = jobOf('pull', { recordId: record.recordId, tag: 42 });
    const failure = await worker()
      .runJob(job, context)
      .catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'SHIFTER_JOB_PAYLOAD_INVALID', retryable: false });
    expect(ran).toEqual([]);
    // The queue then ends the job `failed` and calls onFailed with the recorded error.
    await worker().onJobFailed(
      jobOf('pull', job.payload, { code: 'SHIFTER_JOB_PAYLOAD_INVALID', message: (failure as Error).message }),
    );
    expect(store.records.get(record.recordId)).toMatchObject({
      status: 'FAILURE',
      error: { code: 'SHIFTER_JOB_PAYLOAD_INVALID' },
    });
  });
});
