/**
 * The pull job: resolve a tag, fetch and convert its image, transfer it to the system and make its record READY.
 *
 * @packageDocumentation
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ShifterConfig, SystemConfig } from '../../config/index.js';
import { parseDigest, digestHex } from '../../digest/index.js';
import type { JobContext, JobRecord, JsonValue } from '../../jobs/index.js';
import { writeMetaFile } from '../../meta/meta-format.js';
import {
  IN_FLIGHT_STATUSES,
  type AccessList,
  type ImageRecordPatch,
  type ImageStatus,
  type MetadataStore,
} from '../../metadata/index.js';
import type { ImageReference } from '../../reference/index.js';
import type { Transfer } from '../../transfer/index.js';
import { fileAccessOf, isPublicAccess, mergeAccess, PUBLIC_ACCESS } from '../access.js';
import type { ImagePuller, PullProgress, PullTarget } from '../image-puller.js';
import type { ProgressReporter } from '../progress-reporter.js';
import { runExaminer } from '../run-program.js';
import type { ImagePlacement } from './image-placement.js';
import { inFlightRecord, scratchPrefix } from './image-placement.js';
import type { PullPayload } from './job-payloads.js';

export type { PullPayload } from './job-payloads.js';

/** What a {@link PullJob} needs: nothing else of the service. */
export interface PullJobDeps {
  /** The settings the job reads. */
  readonly config: Pick<ShifterConfig, 'examiner' | 'enableLabels'> & {
    readonly storage: Pick<ShifterConfig['storage'], 'expandDir'>;
  };
  /** The record methods the job uses. */
  readonly store: Pick<MetadataStore, 'get' | 'update' | 'findReadyByImageId' | 'moveTag'>;
  /** Transfer of each system. */
  readonly transferFor: (system: string) => Pick<Transfer, 'exists' | 'put' | 'putMeta'>;
  /** Registry side. */
  readonly puller: ImagePuller;
  /** Clock in epoch ms. */
  readonly now: () => number;
  /** The system's config (its platform). */
  readonly system: (name: string) => Pick<SystemConfig, 'platform'>;
  /** The reference a normalised docker tag names. */
  readonly referenceOf: (tag: string) => ImageReference;
  /** Expiration of an image used at `now`. */
  readonly expirationFrom: (now: number) => number;
  /** State and progress writes. */
  readonly progress: Pick<ProgressReporter, 'setState' | 'report' | 'forget'>;
  /** Steps shared with imports. */
  readonly placement: Pick<ImagePlacement, 'attachTag' | 'settleFileAccess'>;
}

/**
 * Runs `pull` jobs: `PULLING → [EXAMINATION] → CONVERSION → TRANSFER → READY`. Idempotent: a record no longer in
 * flight is left alone, and an image already on the system (same content) only gains the tag once the registry proved
 * to this pull's login that it serves every blob.
 */
export class PullJob {
  private readonly config: PullJobDeps['config'];
  private readonly store: PullJobDeps['store'];
  private readonly transferFor: PullJobDeps['transferFor'];
  private readonly puller: ImagePuller;
  private readonly now: () => number;
  private readonly system: PullJobDeps['system'];
  private readonly expirationFrom: PullJobDeps['expirationFrom'];
  private readonly progress: PullJobDeps['progress'];
  private readonly placement: PullJobDeps['placement'];
  private readonly scratchPrefix = scratchPrefix;

  constructor(private readonly deps: PullJobDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.transferFor = deps.transferFor;
    this.puller = deps.puller;
    this.now = deps.now;
    this.system = deps.system;
    this.expirationFrom = deps.expirationFrom;
    this.progress = deps.progress;
    this.placement = deps.placement;
  }

  private inFlightRecord(recordId: string) {
    return inFlightRecord(this.store, recordId);
  }

  private parseDockerTag(tag: string): { reference: ImageReference } {
    return { reference: this.deps.referenceOf(tag) };
  }

  private setState(...args: Parameters<ProgressReporter['setState']>) {
    return this.progress.setState(...args);
  }

  private reportProgress(...args: Parameters<ProgressReporter['report']>): void {
    this.progress.report(...args);
  }

  private attachTag(...args: Parameters<ImagePlacement['attachTag']>) {
    return this.placement.attachTag(...args);
  }

  private settleFileAccess(...args: Parameters<ImagePlacement['settleFileAccess']>) {
    return this.placement.settleFileAccess(...args);
  }

  /**
   * Run one pull job.
   * @returns `{ imageId, metadataOnly }`, or `{ skipped: true }` when the record is no longer in flight
   */
  async runPull(job: JobRecord, payload: PullPayload, context: JobContext): Promise<JsonValue> {
    const record = await this.inFlightRecord(payload.recordId);
    if (!record) return { skipped: true };
    const systemConfig = this.system(job.system);
    const transfer = this.transferFor(job.system);
    const { reference } = this.parseDockerTag(payload.tag);
    const target: PullTarget = {
      reference,
      platform: systemConfig.platform,
      login: payload.secrets?.login,
      signal: context.signal,
    };

    await this.setState(record.recordId, 'PULLING', { step: 'Resolving tag' });
    const resolved = await this.puller.resolve(target);
    const digest = parseDigest(resolved.digest);
    const id = digestHex(digest);
    const isPrivate = resolved.private;
    const now = this.now();
    // What this pull proved: the tag is public, or private to the ACL the request asked for.
    const access: AccessList = isPrivate
      ? { private: true, userAcl: [...record.userAcl], groupAcl: [...record.groupAcl] }
      : PUBLIC_ACCESS;
    // Known from here on: whether the queue may show this pull to others.
    await this.setState(record.recordId, 'PULLING', { step: 'Resolved tag' }, { private: isPrivate });

    const existing = await this.store.findReadyByImageId(job.system, id);
    if (existing && (await transfer.exists(id, { signal: context.signal }))) {
      // SECURITY: the image is on the system already, but this pull's registry must still prove, to this pull's
      // login, that it serves every blob of it; a manifest naming someone else's private layers proves nothing.
      await this.setState(record.recordId, 'PULLING', {
        step: 'Image already on the system: checking the registry serves it',
      });
      await this.puller.prove({ ...target, digest });
      await this.setState(record.recordId, 'TRANSFER', { step: 'Image already on the system: updating metadata' });
      await this.attachTag(
        existing,
        record,
        payload.tag,
        access,
        { manifestDigest: digest, now, onDisk: fileAccessOf(existing) },
        transfer,
      );
      return { imageId: id, metadataOnly: true };
    }

    await mkdir(this.config.storage.expandDir, { recursive: true });
    const scratch = await mkdtemp(join(this.config.storage.expandDir, this.scratchPrefix(job.system)));
    try {
      await this.setState(
        record.recordId,
        'PULLING',
        { step: 'Pulling layers' },
        { imageId: id, manifestDigest: digest },
      );
      const examiner = this.config.examiner;
      // The file's ACL: this pull's, widened by a READY record of the same content (whose file this replaces). The
      // puller asks for it once, when it writes the .meta (after the squashfs), so the .meta is written once.
      let fileAcl: AccessList = access;
      const pulled = await this.puller.fetch(
        {
          ...target,
          digest,
          outDir: scratch,
          scratchDir: scratch,
          access: async () => {
            const current = await this.store.findReadyByImageId(job.system, id);
            fileAcl = current ? mergeAccess(fileAccessOf(current), access) : access;
            return isPublicAccess(fileAcl) ? {} : { userACL: [...fileAcl.userAcl], groupACL: [...fileAcl.groupAcl] };
          },
          ...(examiner
            ? {
                examine: async (rootDir: string) => {
                  await this.setState(record.recordId, 'EXAMINATION', { step: 'Examining image' });
                  await runExaminer(examiner, rootDir, id, context.signal);
                },
              }
            : {}),
        },
        (progress) => this.onPullProgress(record.recordId, progress, context),
      );
      const metaPath = pulled.metaPath;
      await this.setState(record.recordId, 'TRANSFER', { step: 'Transferring image' });
      await transfer.put(pulled.squashfsPath, metaPath, id, {
        private: !isPublicAccess(fileAcl),
        signal: context.signal,
        // The scratch files are this job's own and removed below: a local transfer renames instead of copying.
        move: true,
      });

      const metadata = pulled.metadata;
      const patch: ImageRecordPatch = {
        env: metadata.env,
        entrypoint: metadata.entrypoint,
        cmd: metadata.cmd,
        workdir: metadata.workdir,
        labels: this.config.enableLabels ? metadata.labels : {},
        user: metadata.user,
      };
      const raced = await this.store.findReadyByImageId(job.system, id);
      if (raced && raced.recordId !== record.recordId) {
        await this.attachTag(
          raced,
          record,
          payload.tag,
          access,
          { manifestDigest: digest, now, onDisk: fileAcl },
          transfer,
        );
      } else {
        await this.store.update(
          record.recordId,
          {
            ...patch,
            private: !isPublicAccess(fileAcl),
            userAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
            groupAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
            status: 'READY',
            statusMessage: 'Image ready',
            progress: null,
            error: null,
            imageId: id,
            manifestDigest: digest,
            lastPull: now,
            expiration: this.expirationFrom(now),
          },
          { expectStatus: [...IN_FLIGHT_STATUSES] },
        );
        await this.store.moveTag(record.recordId, payload.tag, access);
        await this.settleFileAccess(job.system, id, fileAcl, transfer);
      }
      this.progress.forget(record.recordId);
      return { imageId: id, metadataOnly: false };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private onPullProgress(recordId: string, progress: PullProgress, context: JobContext): void {
    if (progress.phase === 'download') {
      this.reportProgress(
        recordId,
        'PULLING',
        {
          step: `Pulling layer ${progress.index + 1}/${progress.count}`,
          layer: progress.layer,
          bytesDone: progress.bytesDone,
          bytesTotal: progress.bytesTotal,
        },
        context,
      );
    } else {
      const layer =
        progress.index !== undefined && progress.count !== undefined ? ` ${progress.index + 1}/${progress.count}` : '';
      const status: ImageStatus = progress.step.startsWith('Extracting') ? 'PULLING' : 'CONVERSION';
      this.reportProgress(recordId, status, { step: `${progress.step}${layer}`, layer: progress.layer }, context);
    }
  }
}
