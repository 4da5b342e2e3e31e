/**
 * `shifter-gateway migrate-upstream`: bring an upstream Shifter site's MongoDB records and image files into this
 * gateway's store (docs/migration.md). The work is `migrateUpstream` of `@shifter/core`; this file parses options and
 * prints the report.
 */
import {
  type MigrationReport,
  type ShifterConfig,
  ShifterError,
  migrateUpstream,
  migrationSystems,
  openDefaultStore,
} from '@shifter/core';

/** Options of {@link runMigration}. */
export interface MigrationCommandOptions {
  /** Upstream's MongoDB (`MongoDBURI`); default: this gateway's own MongoDB when it uses one. */
  readonly mongoUrl?: string | undefined;
  /** Upstream's database name (`MongoDB`); default this gateway's database, else `Shifter`. */
  readonly mongoDatabase?: string | undefined;
  /** `SYSTEM=DIR` entries: upstream's image directory per system. */
  readonly imageDirs?: readonly string[] | undefined;
  readonly dryRun?: boolean;
}

/**
 * Run the migration for `config` and return the report.
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` for missing or malformed options
 */
export async function runMigration(config: ShifterConfig, options: MigrationCommandOptions): Promise<MigrationReport> {
  const sourceDirs: Record<string, string> = {};
  for (const entry of options.imageDirs ?? []) {
    const equals = entry.indexOf('=');
    if (equals <= 0 || !entry.slice(equals + 1).startsWith('/')) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `--image-dir takes SYSTEM=/absolute/dir, got ${JSON.stringify(entry)}`,
      );
    }
    sourceDirs[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  const systems = migrationSystems(config.systems, sourceDirs);
  const ownMongo = config.metadata.kind === 'mongo' ? config.metadata : undefined;
  const url = options.mongoUrl ?? ownMongo?.url;
  if (!url) throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', "give --mongo-url: upstream's MongoDBURI");
  const { MongoUpstreamSource } = await import('@shifter/core/mongo');
  const source = await MongoUpstreamSource.connect(url, options.mongoDatabase ?? ownMongo?.database ?? 'Shifter');
  try {
    const store = await openDefaultStore(config);
    try {
      return await migrateUpstream({ source, store, systems, dryRun: options.dryRun === true });
    } finally {
      await store.close();
    }
  } finally {
    await source.close();
  }
}

/** The report as text: one line per image taken, unchanged or skipped (with its reason), then the totals. */
export function formatMigrationReport(report: MigrationReport): string {
  const lines: string[] = [];
  const verb = report.dryRun ? 'would take' : 'took';
  for (const image of report.images.taken) {
    lines.push(
      `${verb}: ${image.system} ${image.itype} ${image.tags.join(',')} ${image.imageId}${image.private ? ' (private)' : ''}${image.copied ? ' (files copied)' : ''}`,
    );
  }
  for (const image of report.images.unchanged)
    lines.push(`unchanged: ${image.system} ${image.itype} ${image.tags.join(',')} ${image.imageId}`);
  for (const skip of report.images.skipped)
    lines.push(
      `skipped: record ${skip.upstreamId} ${skip.system ?? '-'} ${skip.tags.join(',') || '-'}: ${skip.reason}`,
    );
  for (const skip of report.metrics.skipped) lines.push(`skipped metrics row ${skip.upstreamId}: ${skip.reason}`);
  lines.push(
    `${report.dryRun ? 'dry run, nothing written: ' : ''}images: ${report.images.taken.length} ${report.dryRun ? 'to take' : 'taken'}, ` +
      `${report.images.unchanged.length} unchanged, ${report.images.skipped.length} skipped; metrics rows: ${report.metrics.taken} ${report.dryRun ? 'to take' : 'taken'}, ` +
      `${report.metrics.unchanged} unchanged, ${report.metrics.skipped.length} skipped`,
  );
  return `${lines.join('\n')}\n`;
}
