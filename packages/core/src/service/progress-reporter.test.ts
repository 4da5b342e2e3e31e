import { describe, expect, it } from 'vitest';
import type { ImageRecordPatch, UpdateExpectations } from '../metadata/index.js';
import { PROGRESS_INTERVAL_MS, ProgressReporter } from './progress-reporter.js';

function setup() {
  let now = 1_000;
  const writes: [string, ImageRecordPatch, UpdateExpectations | undefined][] = [];
  const heartbeats: unknown[] = [];
  const store = {
    async update(recordId: string, patch: ImageRecordPatch, expectations?: UpdateExpectations) {
      writes.push([recordId, patch, expectations]);
      return {} as never;
    },
  };
  const reporter = new ProgressReporter({ store, now: () => now });
  const context = { heartbeat: async (progress?: unknown) => void heartbeats.push(progress) };
  return { reporter, writes, heartbeats, context, tick: (ms: number) => (now += ms) };
}

describe('ProgressReporter', () => {
  it('writes progress within a state at most every PROGRESS_INTERVAL_MS, and every change of state at once', () => {
    const { reporter, writes, heartbeats, context, tick } = setup();
    reporter.report('r1', 'PULLING', { step: 'layer 1/2', bytesDone: 1 }, context);
    tick(1);
    reporter.report('r1', 'PULLING', { step: 'layer 1/2', bytesDone: 2 }, context);
    tick(PROGRESS_INTERVAL_MS - 2);
    reporter.report('r1', 'PULLING', { step: 'layer 1/2', bytesDone: 3 }, context);
    reporter.report('r1', 'CONVERSION', { step: 'Converting' }, context);
    tick(PROGRESS_INTERVAL_MS);
    reporter.report('r1', 'CONVERSION', { step: 'Converting 2' }, context);
    expect(writes.map(([, patch]) => patch.statusMessage)).toEqual(['layer 1/2', 'Converting', 'Converting 2']);
    expect(writes.every(([, , expectations]) => Array.isArray(expectations?.expectStatus))).toBe(true);
    expect(heartbeats).toHaveLength(3);
  });

  it('counts a setState as a write, and forgets a record when told', async () => {
    const { reporter, writes, context, tick } = setup();
    await reporter.setState('r1', 'PULLING', { step: 'Pulling layers' });
    reporter.report('r1', 'PULLING', { step: 'layer 1/1' }, context);
    expect(writes).toHaveLength(1);
    reporter.forget('r1');
    tick(1);
    reporter.report('r1', 'PULLING', { step: 'layer 1/1' }, context);
    expect(writes).toHaveLength(2);
  });

  it('fails an in-flight record with the error as its status message', async () => {
    const { reporter, writes } = setup();
    await reporter.fail('r1', { code: 'SHIFTER_JOB_WORKER_LOST', message: 'gone' });
    expect(writes[0]?.[1]).toMatchObject({
      status: 'FAILURE',
      error: { code: 'SHIFTER_JOB_WORKER_LOST', message: 'gone' },
      statusMessage: 'SHIFTER_JOB_WORKER_LOST: gone',
    });
  });
});
