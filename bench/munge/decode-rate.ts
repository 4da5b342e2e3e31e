/**
 * Munge decode throughput: the in-process libmunge binding (`createMungeVerifier`, async work on libuv's thread
 * pool) against upstream's approach, one `unmunge` process per credential — measured in the same run, same munged.
 * Also reports the event-loop delay while the binding decodes, to show decoding does not block the loop.
 *
 * Usage: node --import tsx --conditions=@shifter/source bench/munge/decode-rate.ts [socket] [count]
 */
import { spawn } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createMungeVerifier, mungeEncode } from '@shifter/core';

const socketPath = process.argv[2] ?? '/run/munge/munge.socket.2';
const count = Number(process.argv[3] ?? 5000);

async function encodeMany(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 200) {
    out.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(200, n - i) }, (_, j) => mungeEncode(`{"n":${i + j}}`, { socketPath })),
      )),
    );
  }
  return out;
}

async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

function unmunge(credential: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('unmunge', ['-S', socketPath], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`unmunge exited ${code}`))));
    child.stdin.end(credential);
  });
}

const verifier = createMungeVerifier({ socketPath });
const encodeStart = performance.now();
const credentials = await encodeMany(count);
const encodeRate = count / ((performance.now() - encodeStart) / 1000);

const results: { name: string; rate: number; lagP99?: number; lagMax?: number }[] = [];
for (const concurrency of [1, 4, 16]) {
  const batch = credentials.splice(0, Math.floor(count / 4));
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const start = performance.now();
  await pool(batch, concurrency, (c) => verifier.verify(c));
  const seconds = (performance.now() - start) / 1000;
  lag.disable();
  results.push({
    name: `in-process binding, ${concurrency} in flight`,
    rate: batch.length / seconds,
    lagP99: lag.percentile(99) / 1e6,
    lagMax: lag.max / 1e6,
  });
}
const processBatch = await encodeMany(Math.min(400, Math.floor(count / 10)));
for (const concurrency of [1, 4]) {
  const batch = processBatch.splice(0, processBatch.length / (concurrency === 1 ? 2 : 1));
  const start = performance.now();
  await pool(batch, concurrency, unmunge);
  results.push({
    name: `unmunge process per credential, ${concurrency} in flight`,
    rate: batch.length / ((performance.now() - start) / 1000),
  });
}

const peer = results.find((r) => r.name.startsWith('unmunge') && r.name.includes('4 in flight'))!.rate;
console.log(`encode (in-process, 200 in flight): ${encodeRate.toFixed(0)} credentials/s`);
console.log('| variant | decodes/s | × unmunge (4 in flight) | event-loop delay p99 / max (ms) |');
console.log('|---|---:|---:|---:|');
for (const r of results) {
  const lag = r.lagP99 === undefined ? '—' : `${r.lagP99.toFixed(2)} / ${r.lagMax!.toFixed(2)}`;
  console.log(`| ${r.name} | ${r.rate.toFixed(0)} | ${(r.rate / peer).toFixed(1)} | ${lag} |`);
}
