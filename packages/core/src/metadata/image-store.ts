/**
 * The image-record part of the metadata store: image records, their tags and the ACL each tag carries.
 *
 * Consistency model: every method changes at most one record atomically (MongoDB-compatible servers such as FerretDB
 * have no multi-document transactions). Where an operation touches several records (`moveTag`), its order of writes
 * is documented so a reader never sees a tag vanish. `describeImageStoreContract` in `@shifter/core/testing` is the
 * executable form of the contracts written here.
 *
 * Errors (the same for every backend):
 * - `SHIFTER_IMAGE_NOT_FOUND` ({@link NotFoundError}): the record id does not exist.
 * - `SHIFTER_JOB_CONFLICT` ({@link StoreError}): a compare-and-set expectation did not hold, or an in-flight
 *   record for the same (system, itype, pulltag, requester) exists.
 * - `SHIFTER_STORE_UNAVAILABLE` ({@link StoreError}): the backend cannot be reached or refused the operation.
 * - `SHIFTER_USAGE_INVALID_ARGUMENT` (a ShifterError): an invalid record or patch.
 *
 * @packageDocumentation
 */
// Imported for TSDoc links only.
import type { NotFoundError, StoreError } from '../errors/index.js';
import type { AccessList, ImageRecord, ImageRecordPatch, ImageStatus, NewImageRecord } from './image-record.js';

/** Compare-and-set conditions of {@link ImageStore.update}. All given conditions must hold. */
export interface UpdateExpectations {
  /** The record's status must be this one (or one of these). */
  readonly expectStatus?: ImageStatus | readonly ImageStatus[];
  /** The record's revision must be exactly this. */
  readonly expectRevision?: number;
}

/** Filter of {@link ImageStore.list}. Omitted fields do not filter. */
export interface ImageRecordFilter {
  /** Only this system. */
  readonly system?: string;
  /** Only this image type. */
  readonly itype?: string;
  /** Only this status (or these). */
  readonly status?: ImageStatus | readonly ImageStatus[];
  /** Only records whose `expiration` is set and `< expiresBefore` (epoch ms). */
  readonly expiresBefore?: number;
  /** Only records whose `lastPull` is null or `< lastPullBefore` (epoch ms). */
  readonly lastPullBefore?: number;
  /** At most this many (oldest `createdAt` first). */
  readonly limit?: number;
}

/** Result of {@link ImageStore.createOrGetInFlight}. */
export interface CreateOrGetResult {
  /** The record now in flight for the key: the new one, or the one that already existed. */
  readonly record: ImageRecord;
  /** True when this call created it (the caller must then start its job); false when it already existed. */
  readonly created: boolean;
}

/**
 * Image records and tags. Implementations are safe for concurrent use by many callers in one process and, for
 * shared backends (MongoDB), by many processes. Records returned are snapshots, frozen or copied; mutate through the
 * methods.
 *
 * @see {@link NotFoundError} {@link StoreError}
 */
export interface ImageStore {
  /**
   * Insert a record as given (any status). Used for seeding and for records that need no dedup.
   * @returns the stored record (with `recordId`, `revision` 1 and timestamps).
   * @throws {@link StoreError} `SHIFTER_JOB_CONFLICT` when `input.status` is in flight and a record in flight for the
   *   same (system, itype, pulltag, requester) exists; `SHIFTER_STORE_UNAVAILABLE`.
   */
  insert(input: NewImageRecord): Promise<ImageRecord>;

  /**
   * Atomically create the in-flight record for (system, itype, pulltag, requester), or return the one that exists.
   * This is how 50 concurrent pull requests for one tag end up with exactly one record (and so one job): exactly one
   * caller gets `created: true`. `input.status` must be in flight (e.g. `INIT`) and `input.pulltag` set.
   *
   * Idempotent: calling again while the record is in flight returns it with `created: false`. Once the record leaves
   * the in-flight states (READY, FAILURE, …) the key is free again.
   * @throws {@link StoreError} `SHIFTER_USAGE_INVALID_ARGUMENT` (a ShifterError) when status is not in flight or
   *   pulltag is missing; `SHIFTER_STORE_UNAVAILABLE`.
   */
  createOrGetInFlight(input: NewImageRecord & { readonly pulltag: string }): Promise<CreateOrGetResult>;

  /** The record with this id, or null. */
  get(recordId: string): Promise<ImageRecord | null>;

  /**
   * Apply `patch` to one record atomically, bump its revision and `updatedAt`, and return the new record. With
   * expectations it is a compare-and-set: the write happens only if they all hold at write time. Moving a record out
   * of the in-flight states frees its (system, itype, pulltag, requester) key; moving one into them takes the key
   * (conflict if taken).
   * @throws {@link NotFoundError} `SHIFTER_IMAGE_NOT_FOUND` when no such record;
   *   {@link StoreError} `SHIFTER_JOB_CONFLICT` when an expectation did not hold (details carry the actual status and
   *   revision) or the in-flight key is taken; `SHIFTER_STORE_UNAVAILABLE`.
   */
  update(recordId: string, patch: ImageRecordPatch, expectations?: UpdateExpectations): Promise<ImageRecord>;

  /**
   * The record in flight for (system, itype, pulltag, requester), or null. Without `requester` (or with null), the
   * record of a request made without one (records written before requesters existed).
   */
  findInFlight(system: string, itype: string, pulltag: string, requester?: string | null): Promise<ImageRecord | null>;

  /**
   * The READY record carrying `tag` on (system, itype), or null. If a concurrent {@link ImageStore.moveTag} briefly
   * leaves the tag on two records, the most recently updated one wins.
   */
  findReadyByTag(system: string, itype: string, tag: string): Promise<ImageRecord | null>;

  /** The READY record with this image id on this system, or null (the newest if several). */
  findReadyByImageId(system: string, imageId: string): Promise<ImageRecord | null>;

  /** Every record (any status) carrying `tag` or having it as `pulltag` on (system, itype), newest first. */
  findByTag(system: string, itype: string, tag: string): Promise<ImageRecord[]>;

  /**
   * Make `tag` point at `recordId` alone among records of the same (system, itype), with `access` as the tag's ACL
   * on it (its {@link ImageRecord.tagAccess} entry; without `access`, the entry the target already has for the tag,
   * else the target's record-level ACL). The tag and its entry leave every other record. Order of writes: the tag is
   * added to the target first, then removed from every other record, so a concurrent reader sees the old or the new
   * record, never none. Idempotent.
   * @throws {@link NotFoundError} `SHIFTER_IMAGE_NOT_FOUND`; {@link StoreError} `SHIFTER_STORE_UNAVAILABLE`.
   */
  moveTag(recordId: string, tag: string, access?: AccessList): Promise<ImageRecord>;

  /**
   * Remove `tag` and its access entry from the record (no-op when absent).
   * @throws {@link NotFoundError} `SHIFTER_IMAGE_NOT_FOUND`.
   */
  removeTag(recordId: string, tag: string): Promise<ImageRecord>;

  /** Records matching `filter`, oldest first. */
  list(filter?: ImageRecordFilter): Promise<ImageRecord[]>;

  /** Delete one record. @returns whether it existed. Idempotent. With `expectStatus`, deletes only in that state. */
  delete(recordId: string, expectations?: Pick<UpdateExpectations, 'expectStatus'>): Promise<boolean>;
}
