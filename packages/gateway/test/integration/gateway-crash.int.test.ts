/**
 * Crash safety: kill -9 the embedded gateway (its job worker runs in-process) while a pull is in each state, start it
 * again on the same store, and check that the pull completes or fails with a reason, that no partial file is left
 * in the image directory, and that no record stays in flight past its lease.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  pullUntilDone,
  startGatewayProcess,
  tempDir,
  type GatewayProcess,
} from './gateway-process.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as new (
  file: string,
  options: { readonly: boolean; fileMustExist: boolean },
) => {
  prepare(sql: string): { get(...args: unknown[]): unknown; all(...args: unknown[]): unknown[] };
  close(): void;
};

const ready = haveServices('registry', 'munge') && haveRoot();
const FINAL = /^[0-9a-f]{64}\.(squashfs|meta)$/;

describe.skipIf(!ready)('gateway crash safety (embedded store)', () => {
  let dir: string;
  let imageDir: string;
  let config: Record<string, unknown>;
  let gateway: GatewayProcess | undefined;
  const leaseMs = 4000;

  beforeAll(async () => {
    dir = tempDir('shifter-gw-crash-');
    imageDir = join(dir, 'images');
    (await import('node:fs')).mkdirSync(imageDir);
    config = {
      gateway: { host: '127.0.0.1', port: await freePort() },
      storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
      systems: { cluster: { transfer: { kind: 'local', imageDir }, admins: ['root'] } },
      // The harness registry is no configured location (allowedRegistries defaults to "configured").
      allowedRegistries: 'any',
      metadata: { kind: 'sqlite', path: join(dir, 'gateway.db') },
      queue: { kind: 'in-process', concurrency: 1 },
      jobs: { leaseMs, heartbeatMs: 1000, maxAttempts: 3 },
      conversion: { compression: 'lz4' },
      logLevel: 'info',
    };
  });

  afterAll(async () => {
    await gateway?.kill();
  });

  const statusOf = (tag: string): string | undefined => {
    const db = new Database(join(dir, 'gateway.db'), { readonly: true, fileMustExist: true });
    try {
      const row = db
        .prepare("select status from images where json_extract(doc, '$.pulltag') = ? order by created_at desc limit 1")
        .get(tag) as { status: string } | undefined;
      return row?.status;
    } finally {
      db.close();
    }
  };

  // Each tag is pulled fresh so the kill lands in the named state of a real pull.
  // The large fixtures make the PULLING and CONVERSION windows wide; the small ones stand in when the harness was
  // started without them (the kill then may land in a later state, which the log line reports).
  const cases = [
    { state: 'PENDING', tag: 'test/busybox:latest' },
    { state: 'PULLING', tag: 'test/big:latest', fallback: 'test/weird:latest' },
    { state: 'CONVERSION', tag: 'test/debian:latest', fallback: 'test/whiteout:latest' },
    { state: 'TRANSFER', tag: 'test/multiarch:latest' },
  ];
  let catalog: string[] = [];
  beforeAll(async () => {
    const response = await fetch(`http://${serviceValue('registry')}/v2/_catalog`);
    catalog = ((await response.json()) as { repositories: string[] }).repositories;
  });
  const pick = (tag: string, fallback?: string): string =>
    catalog.includes(tag.split(':')[0]!) || !fallback ? tag : fallback;

  for (const { state, tag: preferred, fallback } of cases) {
    it(`a worker killed in ${state} leaves no partial file and the pull ends READY or FAILURE with a reason`, async () => {
      const tag = `${serviceValue('registry')}/${pick(preferred, fallback)}`;
      gateway = await startGatewayProcess(config, { dir, name: 'crash' });
      const first = await call(gateway.url, 'POST', `/api/pull/cluster/docker/${encodeURIComponent(tag)}/`, {
        credential: await mungeCredential(),
      });
      expect(first.status).toBe(200);
      // Kill as soon as the record reaches the state (or a later one, when the state is too short to catch).
      const order = ['INIT', 'PENDING', 'PULLING', 'EXAMINATION', 'CONVERSION', 'TRANSFER', 'READY', 'FAILURE'];
      let seen = statusOf(tag);
      const deadline = Date.now() + 120_000;
      while (seen !== undefined && order.indexOf(seen) < order.indexOf(state) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        seen = statusOf(tag);
      }
      await gateway.kill();
      console.info(`crash test: wanted ${state}, killed in ${seen}`);

      gateway = await startGatewayProcess(config, { dir, name: 'crash' });
      const restarted = gateway;
      const final = await pullUntilDone(restarted.url, 'cluster', tag, () => mungeCredential(), 240_000).catch(
        (error: Error) => {
          throw new Error(`${error.message}\n--- gateway output ---\n${restarted.output().slice(-6000)}`);
        },
      );
      expect(['READY', 'FAILURE']).toContain(final.body.status);
      if (final.body.status === 'FAILURE') expect(final.body.code).toMatch(/^SHIFTER_/);
      for (const file of readdirSync(imageDir)) expect(file, `left in the image directory: ${file}`).toMatch(FINAL);
      const db = new Database(join(dir, 'gateway.db'), { readonly: true, fileMustExist: true });
      try {
        const stuck = db
          .prepare("select status from jobs where status = 'running' and lease_expires_at < ?")
          .all(Date.now()) as unknown[];
        expect(stuck).toEqual([]);
      } finally {
        db.close();
      }
      await gateway.stop();
      gateway = undefined;
    });
  }
});
