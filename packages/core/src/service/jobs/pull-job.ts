/**
 * The pull job: resolve a tag, fetch and convert its image, transfer it to the system and make its record READY.
 *
 * @packageDocumentation
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryLogin } from '../../auth/index.js';
import type { ShifterConfig, SystemConfig } from '../../config/index.js';
import { parseDigest, digestHex } from '../../digest/index.js';
import type { JobContext, JobRecord, JsonValue } from '../../jobs/index.js';
import { writeMetaFile } from '../../meta/meta-format.js';
import {
  IN_FLIGHT_STATUSES,
  type AccessList,
  type ImageProgress,
  type ImageRecord,
  type ImageRecordPatch,
  type ImageStatus,
  type MetadataStore,
} from '../../metadata/index.js';
import type { ImageReference } from '../../reference/index.js';
import type { Transfer } from '../../transfer/index.js';
import { fileAccessOf, isPublicAccess, mergeAccess, PUBLIC_ACCESS } from '../access.js';
import type { ImagePuller, PullProgress, PullTarget } from '../image-puller.js';
import { runExaminer } from '../run-program.js';

/** Payload of a `pull` job. */
export interface PullPayload {
  readonly recordId: string;
  readonly tag: string;
  /** Erased by the store when the job ends (JOB_SECRETS_KEY). */
  readonly secrets?: { readonly login?: RegistryLogin };
}

/** What the pull job uses of the image service. */
export interface PullJobHost {
  readonly config: ShifterConfig;
  readonly store: MetadataStore;
  readonly transferFor: (system: string) => Transfer;
  readonly puller: ImagePuller;
  readonly now: () => number;
  readonly progressWrittenAt: Map<string, number>;
  readonly progressStatus: Map<string, ImageStatus>;
  inFlightRecord(recordId: string): Promise<ImageRecord | null>;
  system(name: string): SystemConfig;
  parseDockerTag(tag: string): { key: string; reference: ImageReference };
  scratchPrefix(system: string): string;
  expirationFrom(now: number): number;
  setState(
    recordId: string,
    status: ImageStatus,
    progress: ImageProgress | null,
    extra?: ImageRecordPatch,
  ): Promise<ImageRecord>;
  reportProgress(recordId: string, status: ImageStatus, progress: ImageProgress, context: JobContext): void;
  attachTag(
    target: ImageRecord,
    request: ImageRecord,
    tag: string,
    access: AccessList,
    update: { manifestDigest?: string; now: number; onDisk: AccessList },
    transfer: Transfer,
  ): Promise<void>;
  settleFileAccess(system: string, id: string, written: AccessList, transfer: Transfer): Promise<void>;
}

/** Runs `pull` jobs for the image service. */
export class PullJob {
  private readonly config: ShifterConfig;
  private readonly store: MetadataStore;
  private readonly transferFor: (system: string) => Transfer;
  private readonly puller: ImagePuller;
  private readonly now: () => number;
  private readonly progressWrittenAt: Map<string, number>;
  private readonly progressStatus: Map<string, ImageStatus>;
  private readonly inFlightRecord: PullJobHost['inFlightRecord'];
  private readonly system: PullJobHost['system'];
  private readonly parseDockerTag: PullJobHost['parseDockerTag'];
  private readonly scratchPrefix: PullJobHost['scratchPrefix'];
  private readonly expirationFrom: PullJobHost['expirationFrom'];
  private readonly setState: PullJobHost['setState'];
  private readonly reportProgress: PullJobHost['reportProgress'];
  private readonly attachTag: PullJobHost['attachTag'];
  private readonly settleFileAccess: PullJobHost['settleFileAccess'];

  constructor(host: PullJobHost) {
    this.config = host.config;
    this.store = host.store;
    this.transferFor = host.transferFor;
    this.puller = host.puller;
    this.now = host.now;
    this.progressWrittenAt = host.progressWrittenAt;
    this.progressStatus = host.progressStatus;
    this.inFlightRecord = (...a) => host.inFlightRecord(...a);
    this.system = (...a) => host.system(...a);
    this.parseDockerTag = (...a) => host.parseDockerTag(...a);
    this.scratchPrefix = (...a) => host.scratchPrefix(...a);
    this.expirationFrom = (...a) => host.expirationFrom(...a);
    this.setState = (...a) => host.setState(...a);
    this.reportProgress = (...a) => host.reportProgress(...a);
    this.attachTag = (...a) => host.attachTag(...a);
    this.settleFileAccess = (...a) => host.settleFileAccess(...a);
  }

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
      const pulled = await this.puller.fetch(
        {
          ...target,
          digest,
          outDir: scratch,
          scratchDir: scratch,
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
      // The file's ACL: this pull's, widened by a READY record of the same content (whose file this replaces).
      const current = await this.store.findReadyByImageId(job.system, id);
      const fileAcl = current ? mergeAccess(fileAccessOf(current), access) : access;
      const metaPath = join(scratch, `${id}.meta`);
      writeMetaFile(metaPath, {
        format: 'squashfs',
        entrypoint: pulled.metadata.entrypoint,
        cmd: pulled.metadata.cmd,
        workdir: pulled.metadata.workdir,
        env: pulled.metadata.env,
        userACL: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
        groupACL: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
      });
      await this.setState(record.recordId, 'TRANSFER', { step: 'Transferring image' });
      await transfer.put(pulled.squashfsPath, metaPath, id, {
        private: !isPublicAccess(fileAcl),
        signal: context.signal,
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
      this.progressWrittenAt.delete(record.recordId);
      this.progressStatus.delete(record.recordId);
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
