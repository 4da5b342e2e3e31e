/**
 * The import job: read a squashfs file as the caller who asked, check and hash it, transfer it to the system and make
 * its record READY.
 *
 * @packageDocumentation
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ShifterConfig, SystemConfig } from '../../config/index.js';
import { ShifterError } from '../../errors/index.js';
import type { JobContext, JobRecord, JsonValue } from '../../jobs/index.js';
import { writeMetaFile } from '../../meta/meta-format.js';
import { IN_FLIGHT_STATUSES, type AccessList, type MetadataStore } from '../../metadata/index.js';
import type { Transfer } from '../../transfer/index.js';
import { fileAccessOf, mergeAccess, PUBLIC_ACCESS } from '../access.js';
import type { ProgressReporter } from '../progress-reporter.js';
import type { ReadFileAs } from '../run-program.js';
import { checkSquashfs, sha256File } from '../squashfs-check.js';
import { aclPatch, inFlightRecord, scratchPrefix, type ImagePlacement } from './image-placement.js';
import type { ImportPayload } from './job-payloads.js';

/** What an {@link ImportJob} needs: nothing else of the service. */
export interface ImportJobDeps {
  /** The settings the job reads. */
  readonly config: {
    readonly storage: Pick<ShifterConfig['storage'], 'expandDir'>;
    readonly limits: Pick<ShifterConfig['limits'], 'maxImportBytes' | 'importTimeoutMs'>;
  };
  /** The record methods the job uses. */
  readonly store: Pick<MetadataStore, 'get' | 'update' | 'findReadyByImageId' | 'moveTag'>;
  /** Transfer of each system. */
  readonly transferFor: (system: string) => Pick<Transfer, 'exists' | 'put' | 'putMeta'>;
  /** The system's config (its transfer kind). */
  readonly system: (name: string) => Pick<SystemConfig, 'transfer'>;
  /** Copies the file as its caller (see {@link ReadFileAs}). */
  readonly readFileAs: ReadFileAs;
  /** Clock in epoch ms. */
  readonly now: () => number;
  /** Expiration of an image used at `now`. */
  readonly expirationFrom: (now: number) => number;
  /** State writes. */
  readonly progress: Pick<ProgressReporter, 'setState'>;
  /** Steps shared with pulls. */
  readonly placement: Pick<ImagePlacement, 'attachTag' | 'settleFileAccess'>;
  /** Checks a squashfs file (default {@link checkSquashfs}). */
  readonly checkSquashfs?: (path: string) => Promise<unknown>;
  /** Hashes a file to its image id (default {@link sha256File}). */
  readonly hashFile?: (path: string) => Promise<string>;
}

/**
 * Runs `import` jobs: `HASHING → TRANSFER → READY`. The file is read as the caller (the proof they may read it), on
 * systems with a local image directory only. Idempotent: a record no longer in flight is left alone.
 */
export class ImportJob {
  constructor(private readonly deps: ImportJobDeps) {}

  /**
   * Run one import job.
   * @returns `{ imageId }`, or `{ skipped: true }` when the record is no longer in flight
   * @throws {@link ShifterError} `SHIFTER_IMPORT_INVALID` on a system without a local image directory or for a file
   *   that is not a valid squashfs; the reader's errors (`SHIFTER_IMPORT_TIMEOUT`, …)
   */
  async run(job: JobRecord, payload: ImportPayload, context: Pick<JobContext, 'signal'>): Promise<JsonValue> {
    const { store, progress, placement, config } = this.deps;
    const record = await inFlightRecord(store, payload.recordId);
    if (!record) return { skipped: true };
    if (this.deps.system(job.system).transfer.kind !== 'local') {
      throw new ShifterError(
        'SHIFTER_IMPORT_INVALID',
        'imports are supported on systems with a local image directory only',
      );
    }
    const transfer = this.deps.transferFor(job.system);
    await mkdir(config.storage.expandDir, { recursive: true });
    const scratch = await mkdtemp(join(config.storage.expandDir, scratchPrefix(job.system)));
    try {
      await progress.setState(record.recordId, 'HASHING', { step: 'Reading the file as its owner' });
      const copy = join(scratch, 'import.squashfs');
      await this.deps.readFileAs(payload.caller, payload.filepath, copy, {
        maxBytes: config.limits.maxImportBytes,
        timeoutMs: config.limits.importTimeoutMs,
        signal: context.signal,
      });
      await progress.setState(record.recordId, 'HASHING', { step: 'Validating and hashing' });
      await (this.deps.checkSquashfs ?? checkSquashfs)(copy);
      const id = await (this.deps.hashFile ?? sha256File)(copy);
      // The caller read these very bytes as themselves: that is the proof of the content.
      const access: AccessList =
        record.private === true
          ? { private: true, userAcl: [...record.userAcl], groupAcl: [...record.groupAcl] }
          : PUBLIC_ACCESS;
      const existing = await store.findReadyByImageId(job.system, id);
      if (
        existing &&
        existing.recordId !== record.recordId &&
        (await transfer.exists(id, { signal: context.signal }))
      ) {
        // Identical content is on the system already: the file (and its .meta) stay; this tag joins it.
        await progress.setState(
          record.recordId,
          'TRANSFER',
          { step: 'Image already on the system: updating metadata' },
          { imageId: id },
        );
        await placement.attachTag(
          existing,
          record,
          payload.tag,
          access,
          { now: this.deps.now(), onDisk: fileAccessOf(existing) },
          transfer,
        );
        return { imageId: id };
      }
      const fileAcl = existing ? mergeAccess(fileAccessOf(existing), access) : access;
      const acl = aclPatch(fileAcl);
      const metaPath = join(scratch, `${id}.meta`);
      writeMetaFile(metaPath, {
        format: 'squashfs',
        entrypoint: null,
        cmd: null,
        workdir: null,
        env: [],
        userACL: acl.userAcl,
        groupACL: acl.groupAcl,
        user: payload.caller.user,
      });
      await progress.setState(record.recordId, 'TRANSFER', { step: 'Transferring image' }, { imageId: id });
      await transfer.put(copy, metaPath, id, { private: acl.private, signal: context.signal });
      const now = this.deps.now();
      const raced = await store.findReadyByImageId(job.system, id);
      if (raced && raced.recordId !== record.recordId) {
        await placement.attachTag(raced, record, payload.tag, access, { now, onDisk: fileAcl }, transfer);
      } else {
        await store.update(
          record.recordId,
          {
            status: 'READY',
            statusMessage: 'Image ready',
            progress: null,
            imageId: id,
            lastPull: now,
            expiration: this.deps.expirationFrom(now),
            ...acl,
          },
          { expectStatus: [...IN_FLIGHT_STATUSES] },
        );
        await store.moveTag(record.recordId, payload.tag, access);
        await placement.settleFileAccess(job.system, id, fileAcl, transfer);
      }
      return { imageId: id };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
}
