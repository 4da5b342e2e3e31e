/**
 * Steps the pull and import jobs share once an image file is on a system: giving a tag to a READY record of the same
 * content, and settling the file's ACL when several records carry one file.
 *
 * @packageDocumentation
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeMetaFile } from '../../meta/meta-format.js';
import { isInFlightStatus, type AccessList, type ImageRecord, type MetadataStore } from '../../metadata/index.js';
import type { Transfer } from '../../transfer/index.js';
import { fileAccessOf, isPublicAccess, mergeAccess, sameAccess, tagAccessOf } from '../access.js';

/** What an {@link ImagePlacement} needs. */
export interface ImagePlacementDeps {
  readonly store: Pick<MetadataStore, 'update' | 'moveTag' | 'delete' | 'list'>;
  /** Scratch directory for `.meta` rewrites. */
  readonly expandDir: string;
  /** Expiration of an image used at `now` (epoch ms). */
  readonly expirationFrom: (now: number) => number;
  /** Told when a request record is dropped (its progress is no longer tracked). */
  readonly forgetProgress: (recordId: string) => void;
}

/** Update of the target record in {@link ImagePlacement.attachTag}. */
export interface AttachTagUpdate {
  /** Manifest digest this pull resolved (pulls only). */
  readonly manifestDigest?: string;
  /** Time of the pull or import (epoch ms). */
  readonly now: number;
  /** The ACL the `.meta` on disk has now (the target's file ACL, or what this job just wrote). */
  readonly onDisk: AccessList;
}

/** The record-and-file steps shared by the pull and import jobs. */
export class ImagePlacement {
  constructor(private readonly deps: ImagePlacementDeps) {}

  /**
   * A pull or import found its content already READY on the system (same image id): give `tag` to that record with
   * `access` (merged with the access the tag already has there, when it is there: a re-pull adds to a tag's ACL and
   * never narrows it), widen the image file's ACL to cover it (rewriting the `.meta` when what is on disk differs),
   * and drop the request record. Other tags of the record keep their own access, so nobody loses an image or sees a
   * tag they could not see before.
   */
  async attachTag(
    target: ImageRecord,
    request: ImageRecord,
    tag: string,
    access: AccessList,
    update: AttachTagUpdate,
    transfer: Pick<Transfer, 'putMeta'>,
  ): Promise<void> {
    const tagAccess = target.tags.includes(tag) ? mergeAccess(tagAccessOf(target, tag), access) : access;
    const fileAcl = mergeAccess(fileAccessOf(target), access);
    if (!sameAccess(fileAcl, update.onDisk) && target.imageId) {
      await this.rewriteMeta(target, target.imageId, fileAcl, transfer);
    }
    await this.deps.store.update(target.recordId, {
      ...aclPatch(fileAcl),
      ...(update.manifestDigest ? { manifestDigest: update.manifestDigest } : {}),
      lastPull: update.now,
      expiration: this.deps.expirationFrom(update.now),
    });
    await this.deps.store.moveTag(target.recordId, tag, tagAccess);
    await this.deps.store.delete(request.recordId);
    this.deps.forgetProgress(request.recordId);
  }

  /**
   * After a job made its own READY record for image `id`: if concurrent jobs of identical content (from other tags)
   * made READY records of their own meanwhile, the file on disk is the last one written, with that job's ACL. Make the
   * `.meta` (and every such record's file ACL) the merge of them all, so no tag's users lose the image. Whichever job
   * finishes last sees every record, so the file converges on the merge.
   * @param written - the ACL this job wrote into the `.meta`
   */
  async settleFileAccess(
    system: string,
    id: string,
    written: AccessList,
    transfer: Pick<Transfer, 'putMeta'>,
  ): Promise<void> {
    const twins = (await this.deps.store.list({ system, status: 'READY' })).filter(
      (candidate) => candidate.imageId === id,
    );
    if (twins.length < 2) return;
    const merged = twins.map((twin) => fileAccessOf(twin)).reduce((a, b) => mergeAccess(a, b));
    const newest = twins.reduce((a, b) => (b.updatedAt > a.updatedAt ? b : a));
    if (!sameAccess(merged, written)) await this.rewriteMeta(newest, id, merged, transfer);
    for (const twin of twins) {
      if (sameAccess(fileAccessOf(twin), merged)) continue;
      await this.deps.store.update(twin.recordId, aclPatch(merged)).catch(() => undefined);
    }
  }

  /** Write the `.meta` of image `id` from `record`'s metadata with the file ACL `acl`. */
  private async rewriteMeta(
    record: ImageRecord,
    id: string,
    acl: AccessList,
    transfer: Pick<Transfer, 'putMeta'>,
  ): Promise<void> {
    const scratch = await mkdtemp(join(this.deps.expandDir, 'meta-'));
    try {
      const metaPath = join(scratch, `${id}.meta`);
      writeMetaFile(metaPath, {
        format: 'squashfs',
        entrypoint: record.entrypoint ? [...record.entrypoint] : null,
        cmd: record.cmd ? [...record.cmd] : null,
        workdir: record.workdir,
        env: [...record.env],
        userACL: isPublicAccess(acl) ? [] : [...acl.userAcl],
        groupACL: isPublicAccess(acl) ? [] : [...acl.groupAcl],
        ...(record.user && record.filepath ? { user: record.user } : {}),
      });
      await transfer.putMeta(metaPath, id, { private: !isPublicAccess(acl) });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
}

/** The record fields that carry a file ACL. */
export function aclPatch(acl: AccessList): { private: boolean; userAcl: number[]; groupAcl: number[] } {
  return {
    private: !isPublicAccess(acl),
    userAcl: isPublicAccess(acl) ? [] : [...acl.userAcl],
    groupAcl: isPublicAccess(acl) ? [] : [...acl.groupAcl],
  };
}

/** A record, if it is still in flight (a job whose record was finished by someone else does nothing). */
export async function inFlightRecord(store: Pick<MetadataStore, 'get'>, recordId: string): Promise<ImageRecord | null> {
  const record = await store.get(recordId);
  return record && isInFlightStatus(record.status) ? record : null;
}

/** Prefix of a job's scratch directory under `storage.expandDir` (per system, so a worker cleans only its own). */
export function scratchPrefix(system: string): string {
  return `job-${system}-`;
}

/**
 * Remove scratch directories a crashed worker of `system` left in `expandDir`.
 * @returns how many were removed
 */
export async function cleanScratch(expandDir: string, system: string): Promise<number> {
  const prefix = scratchPrefix(system);
  let removed = 0;
  for (const entry of await readdir(expandDir).catch(() => [] as string[])) {
    if (!entry.startsWith(prefix)) continue;
    await rm(join(expandDir, entry), { recursive: true, force: true });
    removed++;
  }
  return removed;
}
