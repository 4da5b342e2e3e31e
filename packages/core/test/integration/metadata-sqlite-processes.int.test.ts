import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '@shifter/core';

// The embedded store is one SQLite file; worker processes on the same host share it. Several real processes racing
// on it must still get exactly one in-flight record, one claim and one compare-and-set winner.
const coreDir = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = `
const { SqliteMetadataStore } = await import('@shifter/core');
const store = new SqliteMetadataStore({ path: process.env.STORE });
const go = Number(process.env.GO);
while (Date.now() < go) await new Promise((r) => setTimeout(r, 1));
const results = { created: 0, records: [], claims: 0, cas: 0, conflicts: 0 };
await Promise.all(Array.from({ length: 10 }, async (_, i) => {
  const r = await store.createOrGetInFlight({ system: 's', itype: 'docker', pulltag: 'race:1', status: 'INIT' });
  if (r.created) results.created++;
  results.records.push(r.record.recordId);
  if (await store.claimJob(process.env.JOB, { owner: 'p' + process.pid + '-' + i, leaseMs: 60000 })) results.claims++;
  try {
    await store.update(process.env.RECORD, { statusMessage: 'p' + process.pid }, { expectRevision: 1 });
    results.cas++;
  } catch (e) {
    if (e.code === 'SHIFTER_JOB_CONFLICT') results.conflicts++; else throw e;
  }
}));
await store.close();
process.stdout.write(JSON.stringify(results));
`;

function runChild(
  env: Record<string, string>,
): Promise<{ created: number; records: string[]; claims: number; cas: number; conflicts: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@shifter/source', '--input-type=module', '-e', CHILD],
      {
        cwd: coreDir,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`))));
  });
}

describe('SqliteMetadataStore shared by several processes', () => {
  it('keeps in-flight creation, claims and compare-and-set exclusive across 4 processes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-procs-'));
    try {
      const path = join(dir, 'gateway.sqlite');
      const store = new SqliteMetadataStore({ path });
      const job = await store.createJob({ kind: 'pull', system: 's' });
      const record = await store.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['x:1'] });
      const env = { STORE: path, JOB: job.id, RECORD: record.recordId, GO: String(Date.now() + 4000) };
      const results = await Promise.all(Array.from({ length: 4 }, () => runChild(env)));
      expect(results.reduce((n, r) => n + r.created, 0)).toBe(1);
      expect(new Set(results.flatMap((r) => r.records)).size).toBe(1);
      expect(results.reduce((n, r) => n + r.claims, 0)).toBe(1);
      expect(results.reduce((n, r) => n + r.cas, 0)).toBe(1);
      expect(results.reduce((n, r) => n + r.conflicts, 0)).toBe(39);
      expect((await store.getJob(job.id))?.attempts).toBe(1);
      expect((await store.get(record.recordId))?.revision).toBe(2);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
