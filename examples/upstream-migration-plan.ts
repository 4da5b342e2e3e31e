/**
 * A site script: before moving from upstream Shifter, list what `shifter-gateway migrate-upstream` would take from
 * upstream's MongoDB and image directory, and what it would leave out and why, without writing anything (a dry run
 * into a throw-away SQLite store).
 *
 *   npx tsx examples/upstream-migration-plan.ts mongodb://db:27017/ Shifter SYSTEM=/images/dir [SYSTEM=/dir …]
 *
 * On failure it prints `CODE: message` and exits with the catalogue's exit code, like every Shifter tool.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore, migrateUpstream, toShifterError, type MigrationSystem } from '@shifter/core';
import { MongoUpstreamSource } from '@shifter/core/mongo';

async function main(argv: string[]): Promise<number> {
  const [url, database, ...dirs] = argv;
  if (!url || !database || dirs.length === 0 || dirs.some((entry) => !entry.includes('='))) {
    console.error('usage: upstream-migration-plan.ts MONGO_URL DATABASE SYSTEM=DIR…');
    return 64;
  }
  const systems: Record<string, MigrationSystem> = {};
  for (const entry of dirs) {
    const [name, dir] = [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)];
    systems[name] = { sourceDir: dir, targetDir: null };
  }
  const scratch = mkdtempSync(join(tmpdir(), 'migration-plan-'));
  const source = await MongoUpstreamSource.connect(url, database);
  const store = new SqliteMetadataStore({ path: join(scratch, 'plan.db') });
  try {
    const report = await migrateUpstream({ source, store, systems, dryRun: true });
    for (const image of report.images.taken)
      console.log(
        `take  ${image.system} ${image.itype}:${image.tags.join(',')} ${image.imageId.slice(0, 12)}${image.private ? ' private' : ''}`,
      );
    for (const skip of report.images.skipped)
      console.log(`skip  ${skip.system ?? '-'} ${skip.tags.join(',') || skip.upstreamId}: ${skip.reason}`);
    console.log(
      `${report.images.taken.length} to take, ${report.images.skipped.length} to skip, ${report.metrics.taken} metrics rows`,
    );
    return 0;
  } finally {
    await store.close();
    await source.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const failure = toShifterError(error);
    console.error(`${failure.code}: ${failure.message}`);
    process.exit(failure.exitCode);
  },
);
