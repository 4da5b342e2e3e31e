import { describe, expect, it } from 'vitest';
import { describeJobStoreContract } from '../testing/contracts/job-store-contract.js';
import type { JobRecord } from './job-record.js';
import { type JobTable, JobTransitions, isClaimable } from './job-transitions.js';

/**
 * The smallest JobTable: a Map. An update is atomic because it runs synchronously between two awaits. This is all a
 * new backend has to supply for the job part of the store.
 */
function memoryJobTable(): JobTable & { readonly jobs: Map<string, JobRecord> } {
  const jobs = new Map<string, JobRecord>();
  return {
    jobs,
    insert: async (job) => void jobs.set(job.id, job),
    get: async (id) => jobs.get(id) ?? null,
    update: async (id, change) => {
      const current = jobs.get(id);
      const next = current ? change(current) : null;
      if (next) jobs.set(id, next);
      return next;
    },
    list: async ({ system, kind, statuses, limit }) =>
      // A Map keeps insertion order, which is oldest first: createdAt never decreases.
      [...jobs.values()]
        .filter((job) => system === undefined || job.system === system)
        .filter((job) => kind === undefined || job.kind === kind)
        .filter((job) => statuses === undefined || statuses.includes(job.status))
        .slice(0, limit),
    listClaimable: async (now, system) =>
      [...jobs.values()].filter((job) => (system === undefined || job.system === system) && isClaimable(job, now)),
    deleteEnded: async (before) => {
      let deleted = 0;
      for (const job of [...jobs.values()]) {
        if ((job.status === 'done' || job.status === 'failed') && job.updatedAt < before)
          deleted += +jobs.delete(job.id);
      }
      return deleted;
    },
  };
}

let counter = 0;
const newId = (): string => `job${String(++counter).padStart(6, '0')}`;

describeJobStoreContract('JobTransitions over a Map', async ({ now }) => ({
  store: new JobTransitions(memoryJobTable(), { now, newId }),
}));

describe('JobTransitions', () => {
  it('reports a failing table as SHIFTER_STORE_UNAVAILABLE, and passes its own errors through', async () => {
    const table = memoryJobTable();
    const jobs = new JobTransitions(
      {
        ...table,
        get: async () => {
          throw new Error('disk on fire');
        },
      },
      { now: () => 1000, newId },
    );
    await expect(jobs.getJob('x')).rejects.toMatchObject({
      code: 'SHIFTER_STORE_UNAVAILABLE',
      message: expect.stringMatching(/getJob failed: disk on fire/),
    });
    await expect(jobs.createJob({ kind: 'pull', system: '' })).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
  });

  it('refuses every call once the store is closed', async () => {
    let closed = false;
    const jobs = new JobTransitions(memoryJobTable(), { now: () => 1000, newId, isClosed: () => closed });
    const job = await jobs.createJob({ kind: 'pull', system: 's' });
    closed = true;
    await expect(jobs.claimJob(job.id, { owner: 'w', leaseMs: 10 })).rejects.toMatchObject({
      code: 'SHIFTER_STORE_UNAVAILABLE',
      retryable: false,
    });
  });

  it('decides on the job a retrying table passes last (a lost compare-and-set)', async () => {
    const table = memoryJobTable();
    const jobs = new JobTransitions(
      {
        ...table,
        // A compare-and-set backend that lost its first race: change() sees a stale queued job, then the real one.
        update: async (id, change) => {
          const current = table.jobs.get(id)!;
          change({ ...current, status: 'queued', leaseOwner: null });
          return table.update(id, change);
        },
      },
      { now: () => 1000, newId },
    );
    const job = await jobs.createJob({ kind: 'pull', system: 's' });
    expect(await jobs.claimJob(job.id, { owner: 'w1', leaseMs: 10_000 })).toMatchObject({ leaseOwner: 'w1' });
    expect(await jobs.claimJob(job.id, { owner: 'w2', leaseMs: 10_000 })).toBeNull();
    expect(await jobs.getJob(job.id)).toMatchObject({ leaseOwner: 'w1', attempts: 1 });
  });
});
