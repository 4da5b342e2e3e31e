/**
 * Metadata store operation rates: the embedded SQLite store against the MongoDB store on the test FerretDB, measured
 * in the same run with the same data — the gateway's hot paths: READY lookup by tag (every `lookup`), a
 * compare-and-set update (every state change and expiration bump), create-or-get of an in-flight record (every
 * `pull`), and a job claim + complete.
 *
 * Usage: node --import tsx --conditions=@shifter/source bench/metadata/store-ops.ts [mongoUrl] [records]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore, type MetadataStore } from '@shifter/core';
import { MongoMetadataStore } from '@shifter/core/mongo';

const mongoUrl = process.argv[2] ?? 'mongodb://127.0.0.1:27017/';
const records = Number(process.argv[3] ?? 2000);
const CONCURRENCY = 16;

async function pool(total: number, work: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) await work(next++);
    }),
  );
  return total / ((performance.now() - start) / 1000);
}

async function measure(store: MetadataStore): Promise<Record<string, number>> {
  const ids: string[] = [];
  for (let i = 0; i < records; i++) {
    const r = await store.insert({
      system: 'bench',
      itype: 'docker',
      status: 'READY',
      tags: [`img${i}:latest`],
      imageId: i.toString(16).padStart(64, '0'),
    });
    ids.push(r.recordId);
  }
  console.error(`  ${records} inserted`);
  const lookups = await pool(records * 2, (i) => store.findReadyByTag('bench', 'docker', `img${i % records}:latest`));
  console.error(`  lookups: ${lookups.toFixed(0)}/s`);
  const updates = await pool(Math.min(records, 500), (i) => store.update(ids[i]!, { expiration: Date.now() + 1000 }));
  console.error(`  updates: ${updates.toFixed(0)}/s`);
  const pulls = await pool(Math.min(records, 500), (i) =>
    store.createOrGetInFlight({ system: 'bench', itype: 'docker', pulltag: `new${i % 250}:1`, status: 'INIT' }),
  );
  const jobs: string[] = [];
  for (let i = 0; i < 200; i++) jobs.push((await store.createJob({ kind: 'pull', system: 'bench' })).id);
  const claims = await pool(jobs.length, async (i) => {
    const job = await store.claimJob(jobs[i]!, { owner: `w${i}`, leaseMs: 60_000 });
    if (job) await store.completeJob(job.id, `w${i}`, null);
  });
  return {
    'lookup (findReadyByTag)': lookups,
    'CAS update': updates,
    'createOrGetInFlight (4 per key)': pulls,
    'claim + complete': claims,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'shifter-bench-store-'));
const sqlite = new SqliteMetadataStore({ path: join(dir, 'gateway.sqlite') });
const sqliteRates = await measure(sqlite);
await sqlite.close();
rmSync(dir, { recursive: true, force: true });

const database = `shifter_bench_${process.pid}`;
const mongo = await MongoMetadataStore.connect({ url: mongoUrl, database });
const mongoRates = await measure(mongo);
await mongo.dropDatabase();
await mongo.close();

console.log(`${records} READY records, ${CONCURRENCY} operations in flight`);
console.log('| operation | SQLite ops/s | MongoDB store on FerretDB ops/s | SQLite ÷ FerretDB |');
console.log('|---|---:|---:|---:|');
for (const name of Object.keys(sqliteRates)) {
  console.log(
    `| ${name} | ${sqliteRates[name]!.toFixed(0)} | ${mongoRates[name]!.toFixed(0)} | ${(sqliteRates[name]! / mongoRates[name]!).toFixed(1)} |`,
  );
}
