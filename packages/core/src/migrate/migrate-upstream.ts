/**
 * Migration from upstream Shifter: its MongoDB records (`images`, `metrics`) and its image directory
 * (`<id>.squashfs` + `<id>.meta`) into this product's metadata store, without pulling anything again.
 *
 * Upstream's collections are only read, never written: keeping them is the rollback. The migration is idempotent
 * (a second run reports every image as unchanged and adds no metrics) and has a dry run that writes nothing.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, lstat, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ShifterError, toShifterError } from '../errors/index.js';
import type { LookupMetric } from '../metadata/image-record.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { parseMeta, type MetaFile } from '../meta/meta-format.js';
import { parseUpstreamImage, parseUpstreamMetric, upstreamIdOf, type MigratedImage } from './upstream-records.js';
import { writeMigratedImage, writeMigratedMetrics } from './write-migrated.js';

/** Where upstream's records come from (a MongoDB database in production: `MongoUpstreamSource` in `@shifter/core/mongo`). */
export interface UpstreamSource {
  /** Every document of upstream's `images` collection. */
  images(): AsyncIterable<Record<string, unknown>>;
  /** Every document of upstream's `metrics` collection (none when metrics were off). */
  metrics(): AsyncIterable<Record<string, unknown>>;
}

/** Image directories of one system. */
export interface MigrationSystem {
  /** Upstream's image directory, as seen from here (`<id>.squashfs` and `<id>.meta` are read from it). */
  readonly sourceDir: string;
  /**
   * This gateway's image directory for the system when files must be copied into it (local delivery to another
   * directory); null when the runtime's image directory is `sourceDir` itself, or is filled by other means.
   */
  readonly targetDir: string | null;
}

/** Options of {@link migrateUpstream}. */
export interface MigrateUpstreamOptions {
  readonly source: UpstreamSource;
  readonly store: MetadataStore;
  /** The systems this gateway serves, by name. Records of other systems are skipped. */
  readonly systems: Readonly<Record<string, MigrationSystem>>;
  /** Read and check everything, write nothing (no store write, no file copy). */
  readonly dryRun?: boolean;
}

/** One image taken (or, in a dry run, that would be taken). */
export interface MigrationTaken {
  readonly upstreamId: string;
  readonly system: string;
  readonly itype: string;
  readonly tags: readonly string[];
  readonly imageId: string;
  readonly private: boolean;
  /** The store record now carrying the tags (null in a dry run when a new record would be made). */
  readonly recordId: string | null;
  /** Whether the files were (or would be) copied into the system's image directory. */
  readonly copied: boolean;
}

/** One upstream record left out, and why. */
export interface MigrationSkip {
  readonly upstreamId: string;
  readonly system: string | null;
  readonly tags: readonly string[];
  readonly reason: string;
}

/** What a migration run did. */
export interface MigrationReport {
  readonly dryRun: boolean;
  readonly images: {
    readonly taken: MigrationTaken[];
    /** Already in the store from an earlier run: nothing done. */
    readonly unchanged: MigrationTaken[];
    readonly skipped: MigrationSkip[];
  };
  readonly metrics: {
    /** Rows added (or that would be). */
    readonly taken: number;
    /** Rows already in the store. */
    readonly unchanged: number;
    readonly skipped: MigrationSkip[];
  };
}

const SQUASHFS_MAGIC = Buffer.from('hsqs');

/** Check `<dir>/<id>.squashfs` and read `<dir>/<id>.meta`; a reason when either is missing, unreadable or wrong. */
async function checkFiles(dir: string, id: string): Promise<{ meta: MetaFile; mode: number } | { skip: string }> {
  const image = join(dir, `${id}.squashfs`);
  const metaPath = join(dir, `${id}.meta`);
  let mode: number;
  try {
    const info = await lstat(image);
    if (!info.isFile()) return { skip: `${image} is not a regular file` };
    mode = info.mode & 0o7777;
    const handle = await open(image, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const magic = Buffer.alloc(4);
      await handle.read(magic, 0, 4, 0);
      if (!magic.equals(SQUASHFS_MAGIC)) return { skip: `${image} is not a squashfs image` };
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { skip: code === 'ENOENT' ? `${image} is missing` : `${image} cannot be read (${code ?? String(error)})` };
  }
  try {
    const info = await lstat(metaPath);
    if (!info.isFile()) return { skip: `${metaPath} is not a regular file` };
    const meta = parseMeta(await readFile(metaPath, 'utf8'));
    if (meta.format !== 'squashfs')
      return { skip: `${metaPath} says FORMAT ${JSON.stringify(meta.format)}, not squashfs` };
    return { meta, mode };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { skip: `${metaPath} is missing` };
    return { skip: `${metaPath} cannot be read (${code ?? toShifterError(error).message})` };
  }
}

/** The runtime enforces the `.meta` ACL; a record whose ACL says otherwise would mean two different things. */
function metaAgrees(meta: MetaFile, image: Omit<MigratedImage, 'cmd' | 'user'>): boolean {
  const list = (ids: readonly number[] | undefined) => [...(ids ?? [])].sort((a, b) => a - b).join(',');
  const metaPrivate = (meta.userACL?.length ?? 0) > 0 || (meta.groupACL?.length ?? 0) > 0;
  if (!image.access.private) return !metaPrivate;
  return list(meta.userACL) === list(image.access.userAcl) && list(meta.groupACL) === list(image.access.groupAcl);
}

/** Copy a file into `dir` under its final name through a temporary name (never a half-written image). */
async function copyInto(from: string, dir: string, name: string, mode: number): Promise<void> {
  const target = join(dir, name);
  const temporary = join(dir, `.${name}.migrate.${randomBytes(6).toString('hex')}`);
  try {
    await copyFile(from, temporary, constants.COPYFILE_EXCL);
    await chmod(temporary, mode);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

async function sameSize(a: string, b: string): Promise<boolean> {
  try {
    return (await stat(a)).size === (await stat(b)).size;
  } catch {
    return false;
  }
}

/**
 * Migrate upstream's records and files into `options.store`.
 *
 * For each READY image record of a configured system: the record is read (see {@link parseUpstreamImage}), its
 * `<id>.squashfs` and `<id>.meta` are checked in the system's `sourceDir` (present, regular, readable, a squashfs
 * image, a `.meta` in upstream's format whose ACL agrees with the record), copied into `targetDir` when one is given,
 * and written to the store by {@link writeMigratedImage}. Then upstream's metrics rows are added. Every record that
 * is not taken is reported with its reason; nothing in upstream's database is changed.
 * @param options - source, store, systems, dry run
 * @returns the report
 * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE` when the store or the upstream database fails
 */
export async function migrateUpstream(options: MigrateUpstreamOptions): Promise<MigrationReport> {
  const dryRun = options.dryRun === true;
  const systems = new Set(Object.keys(options.systems));
  const report: MigrationReport = {
    dryRun,
    images: { taken: [], unchanged: [], skipped: [] },
    metrics: { taken: 0, unchanged: 0, skipped: [] },
  };

  for await (const document of options.source.images()) {
    const tagsOf = () =>
      typeof document.tag === 'string'
        ? [document.tag]
        : Array.isArray(document.tag)
          ? document.tag.filter((t): t is string => typeof t === 'string')
          : [];
    const skip = (reason: string) =>
      report.images.skipped.push({
        upstreamId: upstreamIdOf(document),
        system: typeof document.system === 'string' ? document.system : null,
        tags: tagsOf(),
        reason,
      });
    const parsed = parseUpstreamImage(document, systems);
    if ('skip' in parsed) {
      skip(parsed.skip);
      continue;
    }
    const fields = parsed.ok;
    const system = options.systems[fields.system]!;
    const files = await checkFiles(system.sourceDir, fields.imageId);
    if ('skip' in files) {
      skip(files.skip);
      continue;
    }
    if (!metaAgrees(files.meta, fields)) {
      skip(`the ACL in ${fields.imageId}.meta differs from the record's; fix one of them and run the migration again`);
      continue;
    }
    const image: MigratedImage = { ...fields, cmd: files.meta.cmd, user: files.meta.user ?? null };
    let copied = false;
    if (system.targetDir !== null && system.targetDir !== system.sourceDir) {
      for (const name of [`${image.imageId}.squashfs`, `${image.imageId}.meta`]) {
        if (await sameSize(join(system.sourceDir, name), join(system.targetDir, name))) continue;
        copied = true;
        if (!dryRun)
          await copyInto(
            join(system.sourceDir, name),
            system.targetDir,
            name,
            name.endsWith('.meta') ? 0o644 : files.mode,
          );
      }
    }
    const written = await writeMigratedImage(options.store, image, dryRun);
    if (written.outcome === 'skipped') {
      skip(written.reason);
      continue;
    }
    const entry: MigrationTaken = {
      upstreamId: image.upstreamId,
      system: image.system,
      itype: image.itype,
      tags: image.tags,
      imageId: image.imageId,
      private: image.access.private,
      recordId: written.recordId,
      copied,
    };
    (written.outcome === 'taken' || copied ? report.images.taken : report.images.unchanged).push(entry);
  }

  const bySystem = new Map<string, LookupMetric[]>();
  let rows = 0;
  for await (const document of options.source.metrics()) {
    const parsed = parseUpstreamMetric(document, systems);
    if ('skip' in parsed) {
      report.metrics.skipped.push({
        upstreamId: upstreamIdOf(document),
        system: typeof document.system === 'string' ? document.system : null,
        tags: typeof document.tag === 'string' ? [document.tag] : [],
        reason: parsed.skip,
      });
      continue;
    }
    rows++;
    const list = bySystem.get(parsed.ok.system) ?? [];
    list.push(parsed.ok);
    bySystem.set(parsed.ok.system, list);
  }
  let taken = 0;
  for (const [system, list] of bySystem) taken += await writeMigratedMetrics(options.store, system, list, dryRun);
  return { ...report, metrics: { ...report.metrics, taken, unchanged: rows - taken } };
}

/**
 * The {@link MigrationSystem}s of a gateway configuration. A system delivering to a local directory reads upstream's
 * files from `sourceDirs[system]` (copying them into its own directory) or, when none is given, from its own
 * directory (the usual case: the runtime's `imagePath` is the same shared directory). A system delivering over ssh
 * needs `sourceDirs[system]`, a local view of its image directory; its files are checked there, not copied.
 * @param systems - the configuration's systems
 * @param sourceDirs - upstream's image directory by system name
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` for an ssh system without a source directory, or a source
 *   directory for a system that is not configured
 */
export function migrationSystems(
  systems: Readonly<Record<string, { readonly transfer: { readonly kind: string; readonly imageDir?: string } }>>,
  sourceDirs: Readonly<Record<string, string>> = {},
): Record<string, MigrationSystem> {
  for (const name of Object.keys(sourceDirs)) {
    if (!(name in systems))
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `--image-dir names system ${name}, which is not configured`,
      );
  }
  const result: Record<string, MigrationSystem> = {};
  for (const [name, system] of Object.entries(systems)) {
    const source = sourceDirs[name];
    if (system.transfer.kind === 'local' && system.transfer.imageDir) {
      result[name] = { sourceDir: source ?? system.transfer.imageDir, targetDir: system.transfer.imageDir };
    } else if (source) {
      result[name] = { sourceDir: source, targetDir: null };
    } else {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `system ${name} delivers over ssh: give --image-dir ${name}=DIR, a local view of its image directory`,
      );
    }
  }
  return result;
}
