/**
 * The job store contract suite: creation, exclusive claims, leases and heartbeats, retries and attempts, secrets
 * erased when a job ends, listing and pruning. Every {@link JobStore} must pass it; it is the executable form of the
 * contracts in `job-store.ts`.
 *
 * @packageDocumentation
 */
import { describe, expect, it } from 'vitest';
import type { JobStore } from '../../jobs/job-store.js';
import {
  CONTRACT_T0 as T0,
  expectCode,
  type StoreContractFactory,
  useContractStore,
} from './store-contract-support.js';

/**
 * Define the {@link JobStore} contract tests for one implementation.
 * @param name - shown in the test names, e.g. `'SqliteMetadataStore'`
 * @param factory - makes a fresh store per test, on the clock it is given
 */
export function describeJobStoreContract(name: string, factory: StoreContractFactory<JobStore>): void {
  describe(`JobStore contract: ${name}`, () => {
    const harness = useContractStore(factory);

    const lease = { leaseMs: 1000 };

    it('creates queued jobs with defaults', async () => {
      const job = await harness.store.createJob({
        kind: 'pull',
        system: 'sysa',
        payload: { recordId: 'r1', n: [1, 'x'] },
      });
      expect(job).toMatchObject({
        kind: 'pull',
        system: 'sysa',
        status: 'queued',
        attempts: 0,
        maxAttempts: 3,
        leaseOwner: null,
        leaseExpiresAt: null,
        lastError: null,
        payload: { recordId: 'r1', n: [1, 'x'] },
        createdAt: T0,
      });
      expect(await harness.store.getJob(job.id)).toEqual(job);
      expect(await harness.store.getJob('000000000000000000000000')).toBeNull();
      await expectCode(
        harness.store.createJob({ kind: 'bogus' as 'pull', system: 'sysa' }),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
      await expectCode(
        harness.store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 0 }),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
    });

    it('lets exactly one of several concurrent claimers win', async () => {
      const job = await harness.store.createJob({ kind: 'pull', system: 'sysa' });
      const claims = await Promise.all(
        Array.from({ length: 10 }, (_, i) => harness.store.claimJob(job.id, { owner: `w${i}`, ...lease })),
      );
      const winners = claims.filter((c) => c !== null);
      expect(winners).toHaveLength(1);
      expect(winners[0]).toMatchObject({
        status: 'running',
        attempts: 1,
        leaseExpiresAt: T0 + 1000,
        heartbeatAt: T0,
      });
      expect(await harness.store.claimJob(job.id, { owner: 'late', ...lease })).toBeNull();
    });

    it('extends a lease only for its owner and hands an expired lease to another worker', async () => {
      const job = await harness.store.createJob({ kind: 'pull', system: 'sysa' });
      await harness.store.claimJob(job.id, { owner: 'w1', ...lease });
      harness.advance(800);
      expect(await harness.store.heartbeatJob(job.id, { owner: 'w2', ...lease })).toBeNull();
      const beat = await harness.store.heartbeatJob(job.id, { owner: 'w1', ...lease, progress: { step: 'layer 1' } });
      expect(beat).toMatchObject({ leaseExpiresAt: T0 + 1800, heartbeatAt: T0 + 800, progress: { step: 'layer 1' } });
      harness.advance(900); // lease still valid until T0 + 1800
      expect(await harness.store.claimJob(job.id, { owner: 'w2', ...lease })).toBeNull();
      expect(await harness.store.listClaimableJobs('sysa')).toEqual([]);
      harness.advance(200); // now past the lease
      expect((await harness.store.listClaimableJobs('sysa')).map((j) => j.id)).toEqual([job.id]);
      const taken = await harness.store.claimJob(job.id, { owner: 'w2', ...lease });
      expect(taken).toMatchObject({ leaseOwner: 'w2', attempts: 2, status: 'running' });
      // The old owner lost the job: none of its writes land.
      expect(await harness.store.heartbeatJob(job.id, { owner: 'w1', ...lease })).toBeNull();
      expect(await harness.store.completeJob(job.id, 'w1', { late: true })).toBeNull();
      expect(
        await harness.store.failJob(job.id, 'w1', { code: 'SHIFTER_INTERNAL', message: 'x' }, { retry: true }),
      ).toBeNull();
      const done = await harness.store.completeJob(job.id, 'w2', { ok: true });
      expect(done).toMatchObject({ status: 'done', result: { ok: true }, leaseOwner: null });
      harness.advance(10_000);
      expect(await harness.store.claimJob(job.id, { owner: 'w3', ...lease })).toBeNull();
    });

    it('requeues retryable failures after their back-off and fails the rest', async () => {
      const job = await harness.store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 2 });
      await harness.store.claimJob(job.id, { owner: 'w1', ...lease });
      const requeued = await harness.store.failJob(
        job.id,
        'w1',
        { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
        { retry: true, notBefore: T0 + 500 },
      );
      expect(requeued).toMatchObject({
        status: 'queued',
        notBefore: T0 + 500,
        lastError: { code: 'SHIFTER_REGISTRY_UNAVAILABLE' },
        leaseOwner: null,
      });
      expect(await harness.store.claimJob(job.id, { owner: 'w1', ...lease })).toBeNull();
      harness.advance(500);
      expect(await harness.store.claimJob(job.id, { owner: 'w1', ...lease })).toMatchObject({ attempts: 2 });
      // Out of attempts: even a retryable failure is final.
      const final = await harness.store.failJob(
        job.id,
        'w1',
        { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
        { retry: true },
      );
      expect(final).toMatchObject({ status: 'failed', attempts: 2 });
      const other = await harness.store.createJob({ kind: 'expire', system: 'sysa' });
      await harness.store.claimJob(other.id, { owner: 'w1', ...lease });
      expect(
        await harness.store.failJob(other.id, 'w1', { code: 'SHIFTER_INTERNAL', message: 'bug' }, { retry: false }),
      ).toMatchObject({ status: 'failed', attempts: 1 });
    });

    it('fails a job for good when a claim finds it out of attempts', async () => {
      const job = await harness.store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 1 });
      await harness.store.claimJob(job.id, { owner: 'w1', ...lease });
      harness.advance(2000); // w1 died; its lease expired on the last attempt
      const error = await expectCode(
        harness.store.claimJob(job.id, { owner: 'w2', ...lease }),
        'SHIFTER_JOB_ATTEMPTS_EXHAUSTED',
      );
      expect(error.details).toMatchObject({ jobId: job.id });
      expect(await harness.store.getJob(job.id)).toMatchObject({
        status: 'failed',
        lastError: { code: 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED' },
        leaseOwner: null,
      });
      expect(await harness.store.claimJob(job.id, { owner: 'w2', ...lease })).toBeNull();
    });

    it('erases payload secrets when a job ends, done, failed or exhausted, and keeps them while it may run again', async () => {
      const secrets = { login: { username: 'u', password: 'p' } };
      const done = await harness.store.createJob({
        kind: 'pull',
        system: 'sysa',
        payload: { recordId: 'r1', secrets },
      });
      await harness.store.claimJob(done.id, { owner: 'w1', ...lease });
      expect((await harness.store.getJob(done.id))?.payload).toEqual({ recordId: 'r1', secrets });
      await harness.store.completeJob(done.id, 'w1', { ok: true });
      expect((await harness.store.getJob(done.id))?.payload).toEqual({ recordId: 'r1' });

      const failed = await harness.store.createJob({
        kind: 'pull',
        system: 'sysa',
        maxAttempts: 2,
        payload: { recordId: 'r2', secrets },
      });
      await harness.store.claimJob(failed.id, { owner: 'w1', ...lease });
      await harness.store.failJob(
        failed.id,
        'w1',
        { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
        { retry: true },
      );
      expect((await harness.store.getJob(failed.id))?.payload).toEqual({ recordId: 'r2', secrets });
      await harness.store.claimJob(failed.id, { owner: 'w1', ...lease });
      await harness.store.failJob(
        failed.id,
        'w1',
        { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
        { retry: true },
      );
      expect((await harness.store.getJob(failed.id))?.payload).toEqual({ recordId: 'r2' });

      const dead = await harness.store.createJob({
        kind: 'pull',
        system: 'sysa',
        maxAttempts: 1,
        payload: { recordId: 'r3', secrets },
      });
      await harness.store.claimJob(dead.id, { owner: 'w1', ...lease });
      harness.advance(5000);
      await expectCode(harness.store.claimJob(dead.id, { owner: 'w2', ...lease }), 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED');
      expect(await harness.store.getJob(dead.id)).toMatchObject({ status: 'failed', payload: { recordId: 'r3' } });
      expect((await harness.store.getJob(dead.id))?.payload).not.toHaveProperty('secrets');
    });

    it('claims the oldest due job of a system and reports exhausted ones', async () => {
      const dead = await harness.store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 1 });
      await harness.store.claimJob(dead.id, { owner: 'w0', ...lease });
      harness.advance(5000);
      const first = await harness.store.createJob({ kind: 'pull', system: 'sysa' });
      harness.advance(1);
      const second = await harness.store.createJob({ kind: 'import', system: 'sysa' });
      await harness.store.createJob({ kind: 'pull', system: 'sysb' });
      const exhausted: string[] = [];
      const onExhausted = (job: { id: string }): void => void exhausted.push(job.id);
      expect((await harness.store.claimNextJob('sysa', { owner: 'w1', ...lease, onExhausted }))?.id).toBe(first.id);
      expect(exhausted).toEqual([dead.id]);
      expect((await harness.store.claimNextJob('sysa', { owner: 'w1', ...lease, onExhausted }))?.id).toBe(second.id);
      expect(await harness.store.claimNextJob('sysa', { owner: 'w1', ...lease, onExhausted })).toBeNull();
      expect(await harness.store.claimNextJob('sysc', { owner: 'w1', ...lease })).toBeNull();
    });

    it('lists jobs by system, status and kind, and prunes finished ones', async () => {
      const a = await harness.store.createJob({ kind: 'pull', system: 'sysa' });
      const b = await harness.store.createJob({ kind: 'expire', system: 'sysa' });
      const c = await harness.store.createJob({ kind: 'pull', system: 'sysb' });
      await harness.store.claimJob(b.id, { owner: 'w', ...lease });
      await harness.store.completeJob(b.id, 'w');
      expect((await harness.store.listJobs({ system: 'sysa' })).map((j) => j.id)).toEqual([a.id, b.id]);
      expect((await harness.store.listJobs({ status: 'done' })).map((j) => j.id)).toEqual([b.id]);
      expect((await harness.store.listJobs({ kind: 'pull' })).map((j) => j.id)).toEqual([a.id, c.id]);
      expect((await harness.store.listJobs({ status: ['queued', 'running'], limit: 1 })).map((j) => j.id)).toEqual([
        a.id,
      ]);
      expect((await harness.store.listClaimableJobs()).map((j) => j.id)).toEqual([a.id, c.id]);
      harness.advance(100);
      expect(await harness.store.pruneJobs(T0 + 50)).toBe(1);
      expect(await harness.store.getJob(b.id)).toBeNull();
      expect(await harness.store.getJob(a.id)).not.toBeNull();
    });
  });
}
