import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessJobQueue, SqliteMetadataStore, type JobQueue } from '@shifter/core';
import { RedisJobQueue } from '@shifter/core/redis';
import { haveServices, serviceValue } from '@shifter/core/testing';

// A real worker process, killed with SIGKILL while it runs a job: no cleanup code of it runs. The job must be taken
// over by another worker once the dead one's lease expires, on both queue backends.
const coreDir = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = `
const { SqliteMetadataStore, InProcessJobQueue } = await import('@shifter/core');
const store = new SqliteMetadataStore({ path: process.env.STORE });
let queue;
if (process.env.BACKEND === 'redis') {
  const { RedisJobQueue } = await import('@shifter/core/redis');
  queue = new RedisJobQueue(store, { url: process.env.REDIS_URL, prefix: process.env.PREFIX, sweepIntervalMs: 100 });
} else {
  queue = new InProcessJobQueue(store, { sweepIntervalMs: 100 });
}
await queue.process('sysk', async (job) => {
  process.stdout.write('STARTED ' + job.id + '\\n');
  await new Promise(() => {});
}, { leaseMs: 1500 });
process.stdout.write('READY\\n');
`;

function startChild(env: Record<string, string>): {
  child: ChildProcess;
  lines: string[];
  waitFor: (prefix: string) => Promise<string>;
} {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=@shifter/source', '--input-type=module', '-e', CHILD],
    {
      cwd: coreDir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines: string[] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    lines.push(...parts);
  });
  const waitFor = async (prefix: string): Promise<string> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const line = lines.find((l) => l.startsWith(prefix));
      if (line) return line;
      if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode}) before printing ${prefix}`);
      if (Date.now() > deadline) throw new Error(`worker did not print ${prefix}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, lines, waitFor };
}

async function killHard(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
  expect(child.signalCode).toBe('SIGKILL');
}

const backends: { name: string; services: Parameters<typeof haveServices> }[] = [
  { name: 'in-process', services: [] },
  { name: 'redis', services: ['redis'] },
];

for (const backend of backends) {
  describe.skipIf(backend.services.length > 0 && !haveServices(...backend.services))(
    `kill -9 of a ${backend.name} worker process`,
    () => {
      let dir: string;
      let cleanup: (() => Promise<void>)[] = [];

      afterEach(async () => {
        for (const step of cleanup.reverse()) await step();
        cleanup = [];
        rmSync(dir, { recursive: true, force: true });
      });

      it('hands the job to another worker after the lease expires', async () => {
        dir = mkdtempSync(join(tmpdir(), 'shifter-kill-'));
        const storePath = join(dir, 'gateway.sqlite');
        const prefix = `shifter-kill-${randomBytes(4).toString('hex')}`;
        const env: Record<string, string> = { STORE: storePath, BACKEND: backend.name, PREFIX: prefix };
        if (backend.name === 'redis') env.REDIS_URL = serviceValue('redis');
        const store = new SqliteMetadataStore({ path: storePath });
        cleanup.push(() => store.close());
        const makeQueue = (): JobQueue =>
          backend.name === 'redis'
            ? new RedisJobQueue(store, { url: serviceValue('redis'), prefix, sweepIntervalMs: 100 })
            : new InProcessJobQueue(store, { sweepIntervalMs: 100 });
        if (backend.name === 'redis') {
          cleanup.push(async () => {
            const redis = new Redis(serviceValue('redis'), { maxRetriesPerRequest: null });
            const keys = await redis.keys(`${prefix}:*`);
            if (keys.length) await redis.del(...keys);
            redis.disconnect();
          });
        }

        const worker = startChild(env);
        cleanup.push(async () => void worker.child.kill('SIGKILL'));
        await worker.waitFor('READY');
        const producer = makeQueue();
        cleanup.push(() => producer.close({ timeoutMs: 0 }));
        const job = await producer.enqueue({ kind: 'pull', system: 'sysk', payload: { n: 1 } });
        expect(await worker.waitFor('STARTED')).toBe(`STARTED ${job.id}`);
        const running = (await store.getJob(job.id))!;
        expect(running.status).toBe('running');
        expect(running.leaseOwner).toContain(`:${worker.child.pid}:`);

        await killHard(worker.child);
        const killedAt = Date.now();

        const survivor = makeQueue();
        cleanup.push(() => survivor.close({ timeoutMs: 0 }));
        const attempts: number[] = [];
        await survivor.process(
          'sysk',
          async (_job, { attempt }) => {
            attempts.push(attempt);
            return 'taken over';
          },
          { leaseMs: 1500 },
        );
        const deadline = Date.now() + 30_000;
        while ((await store.getJob(job.id))!.status !== 'done') {
          if (Date.now() > deadline) throw new Error('the job was not taken over');
          await new Promise((r) => setTimeout(r, 25));
        }
        const done = (await store.getJob(job.id))!;
        expect(done).toMatchObject({ status: 'done', attempts: 2, result: 'taken over' });
        expect(done.leaseOwner).toBeNull();
        expect(attempts).toEqual([2]);
        // Not before the dead worker's lease ran out (it was renewed up to the kill).
        expect(Date.now() - killedAt).toBeGreaterThan(running.leaseExpiresAt! - killedAt - 100);
      });
    },
  );
}
