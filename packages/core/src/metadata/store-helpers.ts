/**
 * Pieces every metadata store shares, so the backends agree on ids, errors and record merging (the job rules live in
 * `jobs/job-transitions.ts`).
 * Internal to core (not exported from the barrel); the Mongo adapter imports it by path.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { NotFoundError, ShifterError, StoreError } from '../errors/index.js';
import {
  IMAGE_STATUSES,
  tagAccessFor,
  type AccessList,
  type ImageRecord,
  type ImageRecordPatch,
  type ImageStatus,
  isInFlightStatus,
  type NewImageRecord,
} from './image-record.js';
import type { UpdateExpectations } from './image-store.js';

/** A new opaque id: 24 hex characters (96 random bits, the size of a MongoDB ObjectId). */
export function newStoreId(): string {
  return randomBytes(12).toString('hex');
}

/**
 * The in-flight key of a record: a string unique to (system, itype, pulltag, requester) while the record is in
 * flight, null otherwise. Stores put a unique index on it. A record without a requester keeps the key it had before
 * requesters existed (system, itype, pulltag).
 */
export function inFlightKey(
  record: Pick<ImageRecord, 'system' | 'itype' | 'pulltag' | 'status'> & { readonly requester?: string | null },
): string | null {
  if (!isInFlightStatus(record.status) || record.pulltag === null) return null;
  return inFlightKeyOf(record.system, record.itype, record.pulltag, record.requester ?? null);
}

/** The in-flight key for (system, itype, pulltag, requester); see {@link inFlightKey}. */
export function inFlightKeyOf(system: string, itype: string, pulltag: string, requester: string | null): string {
  return JSON.stringify(requester === null ? [system, itype, pulltag] : [system, itype, pulltag, requester]);
}

/**
 * Apply a tag move to a record's tags and their access (pure): the tag is added (or kept) with `access`, or, without
 * it, with its existing entry or the record-level ACL.
 */
export function withTag(record: ImageRecord, tag: string, access: AccessList | undefined, now: number): ImageRecord {
  const tags = record.tags.includes(tag) ? [...record.tags] : [...record.tags, tag];
  const others = (record.tagAccess ?? []).filter((entry) => entry.tag !== tag);
  const existing = (record.tagAccess ?? []).find((entry) => entry.tag === tag);
  const entry = access ??
    existing ?? { private: record.private === true, userAcl: record.userAcl, groupAcl: record.groupAcl };
  const tagAccess = tagAccessFor(
    tags,
    [...others, { tag, private: entry.private === true, userAcl: entry.userAcl, groupAcl: entry.groupAcl }],
    { private: record.private === true, userAcl: record.userAcl, groupAcl: record.groupAcl },
  );
  return { ...record, tags, tagAccess, revision: record.revision + 1, updatedAt: now };
}

/** Remove a tag and its access entry from a record (pure). */
export function withoutTag(record: ImageRecord, tag: string, now: number): ImageRecord {
  const tags = record.tags.filter((t) => t !== tag);
  return {
    ...record,
    tags,
    tagAccess: (record.tagAccess ?? []).filter((entry) => entry.tag !== tag),
    revision: record.revision + 1,
    updatedAt: now,
  };
}

/** Whether a move of `tag` with `access` would change `record` (false: the tag is there with that very access). */
export function tagMoveChanges(record: ImageRecord, tag: string, access: AccessList | undefined): boolean {
  if (!record.tags.includes(tag)) return true;
  if (access === undefined) return false;
  const entry = (record.tagAccess ?? []).find((candidate) => candidate.tag === tag);
  return (
    !entry ||
    entry.private !== access.private ||
    entry.userAcl.join(',') !== access.userAcl.join(',') ||
    entry.groupAcl.join(',') !== access.groupAcl.join(',')
  );
}

/** Normalise a status-or-statuses filter to a list (undefined stays undefined). */
export function statusList<T extends string>(value: T | readonly T[] | undefined): readonly T[] | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? [value as T] : (value as readonly T[]);
}

/** Check a new record's fields before it is stored. @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT`. */
export function validateNewImageRecord(input: NewImageRecord): void {
  if (typeof input.system !== 'string' || input.system === '') invalid('system must be a non-empty string');
  if (typeof input.itype !== 'string' || input.itype === '') invalid('itype must be a non-empty string');
  if (!(IMAGE_STATUSES as readonly string[]).includes(input.status)) invalid(`unknown status ${String(input.status)}`);
  if (input.tags !== undefined && !Array.isArray(input.tags)) invalid('tags must be an array');
}

/** Check a patch before it is applied. @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT`. */
export function validatePatch(patch: ImageRecordPatch): void {
  const forbidden = ['recordId', 'revision', 'createdAt', 'updatedAt', 'system', 'itype', 'tags', 'tagAccess'];
  for (const key of Object.keys(patch)) {
    if (forbidden.includes(key)) invalid(`field ${key} cannot be changed by update()`);
  }
  if (patch.status !== undefined && !(IMAGE_STATUSES as readonly string[]).includes(patch.status)) {
    invalid(`unknown status ${String(patch.status)}`);
  }
}

/** Apply a patch to a record (pure): bumps revision, sets updatedAt, copies arrays. */
export function applyPatch(record: ImageRecord, patch: ImageRecordPatch, now: number): ImageRecord {
  const defined = Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
  return { ...record, ...defined, revision: record.revision + 1, updatedAt: now } as ImageRecord;
}

/**
 * Check compare-and-set expectations against the current record.
 * @throws StoreError `SHIFTER_JOB_CONFLICT` with details `{ recordId, status, revision }`.
 */
export function checkExpectations(record: ImageRecord, expectations: UpdateExpectations | undefined): void {
  if (!expectations) return;
  const statuses = statusList(expectations.expectStatus);
  const statusOk = statuses === undefined || statuses.includes(record.status);
  const revisionOk = expectations.expectRevision === undefined || expectations.expectRevision === record.revision;
  if (!statusOk || !revisionOk) {
    throw new StoreError(
      'SHIFTER_JOB_CONFLICT',
      `record ${record.recordId} is ${record.status} (revision ${record.revision}), expected ` +
        `${statuses ? statuses.join('|') : 'any status'}${expectations.expectRevision === undefined ? '' : ` revision ${expectations.expectRevision}`}`,
      { details: { recordId: record.recordId, status: record.status, revision: record.revision } },
    );
  }
}

/** The error for a missing image record. */
export function recordNotFound(recordId: string): NotFoundError {
  return new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `no image record ${recordId}`, { details: { recordId } });
}

/** The error for a missing job. */
export function jobNotFound(id: string): NotFoundError {
  return new NotFoundError('SHIFTER_JOB_NOT_FOUND', `no job ${id}`, { details: { jobId: id } });
}

/** The error for a taken in-flight key. */
export function inFlightConflict(record: Pick<ImageRecord, 'system' | 'itype' | 'pulltag'>): StoreError {
  return new StoreError(
    'SHIFTER_JOB_CONFLICT',
    `another request for ${record.system}/${record.itype}/${record.pulltag ?? ''} is in progress`,
    { details: { system: record.system, itype: record.itype, pulltag: record.pulltag } },
  );
}

/** Wrap a backend failure as `SHIFTER_STORE_UNAVAILABLE`; ShifterErrors pass through. */
export function storeUnavailable(error: unknown, what: string): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  return new StoreError(
    'SHIFTER_STORE_UNAVAILABLE',
    `metadata store: ${what} failed: ${(error as Error)?.message ?? String(error)}`,
    {
      cause: error,
    },
  );
}

/** Validate image statuses given as a filter. */
export function isImageStatus(value: string): value is ImageStatus {
  return (IMAGE_STATUSES as readonly string[]).includes(value);
}

function invalid(message: string): never {
  throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', message);
}
