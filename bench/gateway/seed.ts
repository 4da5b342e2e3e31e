// Seed N READY public images into the store of CONFIG and write their lookup paths: `seed.ts CONFIG N PATHS_OUT`.
// Their expiration is BENCH_SEED_EXPIRATION_DAYS (default 1) from now: with the default, the first lookup of each
// image (and then one a minute) pushes it forward, a store write; with a value beyond the configured
// imageExpirationTimeout (90 days by default) no lookup of the run writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { openDefaultStore, parseConfig } from '@shifter/core';

const [file, count, out] = process.argv.slice(2);
const config = parseConfig(JSON.parse(readFileSync(file!, 'utf8')));
const system = Object.keys(config.systems)[0]!;
const store = await openDefaultStore(config);
const paths: string[] = [];
for (let i = 0; i < Number(count); i++) {
  const tag = `bench/image-${i}:latest`;
  const existing = await store.findReadyByTag(system, 'docker', tag);
  if (!existing) {
    const record = await store.insert({
      system,
      itype: 'docker',
      pulltag: tag,
      status: 'READY',
      imageId: i.toString(16).padStart(64, '0'),
      private: false,
      env: ['PATH=/bin'],
      lastPull: Date.now(),
      expiration: Date.now() + Number(process.env.BENCH_SEED_EXPIRATION_DAYS ?? 1) * 86_400_000,
    });
    await store.moveTag(record.recordId, tag);
  }
  paths.push(`/api/lookup/${system}/docker/${encodeURIComponent(tag)}/`);
}
await store.close();
writeFileSync(out!, `${paths.join('\n')}\n`);
