/**
 * The image record: what the gateway knows about one image (or one pull, import or expiry in progress) on one system.
 *
 * It mirrors upstream Shifter's MongoDB `images` document field by field, in camelCase. The wire names the REST API
 * and upstream's database use are listed in {@link IMAGE_RECORD_WIRE_NAMES}; times are epoch **milliseconds** here
 * and epoch **seconds** (floats) on upstream's wire.
 *
 * @packageDocumentation
 */

/**
 * Every state an image record can be in, in upstream's spelling (these strings are visible on the REST API).
 *
 * `INIT → PENDING → PULLING → EXAMINATION → CONVERSION → TRANSFER → READY | FAILURE`; an import goes
 * `PENDING → HASHING → TRANSFER → READY`; an expiry `EXPIRING → EXPIRED`.
 */
export const IMAGE_STATUSES = [
  'INIT',
  'PENDING',
  'PULLING',
  'EXAMINATION',
  'CONVERSION',
  'TRANSFER',
  'HASHING',
  'READY',
  'FAILURE',
  'EXPIRING',
  'EXPIRED',
] as const;

/** One image state (see {@link IMAGE_STATUSES}). */
export type ImageStatus = (typeof IMAGE_STATUSES)[number];

/**
 * The states of a pull or import that is still working. At most one record per (system, itype, pulltag, requester) may be in one
 * of these states at a time; the stores enforce it (see {@link MetadataStore.createOrGetInFlight}).
 */
export const IN_FLIGHT_STATUSES = [
  'INIT',
  'PENDING',
  'PULLING',
  'EXAMINATION',
  'CONVERSION',
  'TRANSFER',
  'HASHING',
] as const satisfies readonly ImageStatus[];

/** Whether a status is one of {@link IN_FLIGHT_STATUSES}. */
export function isInFlightStatus(status: ImageStatus): boolean {
  return (IN_FLIGHT_STATUSES as readonly ImageStatus[]).includes(status);
}

/** Progress of the current step, shown in `status_message` by the service. */
export interface ImageProgress {
  /** What is being done, e.g. `'Pulling layer'`. */
  readonly step: string;
  /** Digest or name of the layer being worked on, when there is one. */
  readonly layer?: string | undefined;
  /** Bytes done so far in this step. */
  readonly bytesDone?: number | undefined;
  /** Total bytes of this step, when known. */
  readonly bytesTotal?: number | undefined;
}

/**
 * An access list: who may use a tag or an image file. Public when `private` is false, or private with both lists empty
 * (upstream's rule); otherwise only uids in `userAcl` and members of a group in `groupAcl`.
 */
export interface AccessList {
  /** True when the access was proved with registry credentials (or an import named allowed uids/gids). */
  readonly private: boolean;
  /** uids allowed. */
  readonly userAcl: readonly number[];
  /** gids allowed. */
  readonly groupAcl: readonly number[];
}

/**
 * The access of one tag at one location: each (system, itype, tag) carries its own ACL, as proved by whoever pulled
 * (or imported) it. Two tags may name identical content (one image file) and still differ in who may see them.
 */
export interface TagAccess extends AccessList {
  /** The tag (as stored in {@link ImageRecord.tags}). */
  readonly tag: string;
}

/** The error a failed record ended with: a catalogue code and its message. */
export interface ImageRecordError {
  /** Stable code from the error catalogue (`docs/errors.md`). */
  readonly code: string;
  /** Client-safe message. */
  readonly message: string;
}

/**
 * One image record. Records are created by the service (one per pull/import request) and a pull record becomes the
 * image record when it reaches READY; tags then move onto it.
 */
export interface ImageRecord {
  /** Store-assigned record id (opaque string; upstream `_id`). Unique per store, stable for the record's life. */
  readonly recordId: string;
  /** Incremented by every update; usable for compare-and-set (`expectRevision`). Starts at 1. */
  readonly revision: number;
  /** System (platform) name. */
  readonly system: string;
  /** Image type: `docker`, `custom`, … */
  readonly itype: string;
  /** The tag as requested by the pull or import that created this record; null for seeded records. */
  readonly pulltag: string | null;
  /** Tags that resolve to this record. A tag lives on at most one record per (system, itype); see {@link MetadataStore.moveTag}. */
  readonly tags: readonly string[];
  /**
   * The ACL of each tag in {@link ImageRecord.tags}, one entry per tag (see {@link TagAccess}). Changed only through
   * {@link MetadataStore.moveTag} and {@link MetadataStore.removeTag}.
   */
  readonly tagAccess: readonly TagAccess[];
  /**
   * Whose request this record is, part of the in-flight key (system, itype, pulltag, requester): `'anonymous'` for a
   * pull without a registry login (all such callers share one), `'login:<hex>'` for a pull with one (a hash of the
   * login, never the login itself), `'uid:<n>'` for an import. null on records that are not requests (seeded or
   * migrated images).
   */
  readonly requester: string | null;
  /** Current state. */
  readonly status: ImageStatus;
  /** Human-readable progress or failure text (upstream `status_message`). */
  readonly statusMessage: string;
  /** Image id: hex sha256 of the manifest (pull) or of the file (import); null until known (upstream `id`). */
  readonly imageId: string | null;
  /** Manifest digest (`sha256:…`) the pull resolved, once resolved; lets a re-pull skip work when unchanged. */
  readonly manifestDigest: string | null;
  /** Image file format, e.g. `squashfs`. */
  readonly format: string;
  /**
   * uids allowed to use a private image (upstream `userACL`); empty for public images. On a READY record this (with
   * `groupAcl` and `private`) is the ACL of the image FILE (its `.meta`): public when any public tag proved the content,
   * else the union of its private tags' ACLs. On an in-flight record it is the ACL the request asked for.
   */
  readonly userAcl: readonly number[];
  /** gids allowed to use a private image (upstream `groupACL`); empty for public images. */
  readonly groupAcl: readonly number[];
  /** True when the pull needed registry credentials; false when public; null while unknown. */
  readonly private: boolean | null;
  /** Environment of the image config, `KEY=value` strings (upstream `ENV`). */
  readonly env: readonly string[];
  /** Entrypoint of the image config (upstream `ENTRY`); null when unset. */
  readonly entrypoint: readonly string[] | null;
  /** Cmd of the image config (upstream keeps it only in `.meta`; stored here as `CMD`). */
  readonly cmd: readonly string[] | null;
  /** Working directory of the image config (upstream `WORKDIR`); null when unset. */
  readonly workdir: string | null;
  /** Labels of the image config (upstream `LABELS`). */
  readonly labels: Readonly<Record<string, string>>;
  /** User of the image config, or the importing user for imports (upstream `USER`); null when unset. */
  readonly user: string | null;
  /** Epoch ms of the last pull request that reached this record (upstream `last_pull`, seconds). */
  readonly lastPull: number | null;
  /** Epoch ms of the last progress report from a worker (upstream `last_heartbeat`, seconds). */
  readonly lastHeartbeat: number | null;
  /** Epoch ms after which the image may be expired (upstream `expiration`, seconds); set by pulls and lookups. */
  readonly expiration: number | null;
  /** Source path of an import (upstream `filepath`); null for pulls. */
  readonly filepath: string | null;
  /** Error of a FAILURE record. */
  readonly error: ImageRecordError | null;
  /** Progress of the current step. */
  readonly progress: ImageProgress | null;
  /** Id of the job working on this record, if any. */
  readonly jobId: string | null;
  /** Epoch ms the record was created. */
  readonly createdAt: number;
  /** Epoch ms of the last update. */
  readonly updatedAt: number;
}

/**
 * What a caller supplies to create a record. `recordId`, `revision`, `createdAt` and `updatedAt` are assigned by the
 * store; every other omitted field gets its empty value (null, `[]`, `{}`, `''`, format `squashfs`). A tag without an
 * entry in `tagAccess` gets the record-level ACL (how records with one ACL, such as upstream's, enter the model).
 */
export type NewImageRecord = Pick<ImageRecord, 'system' | 'itype' | 'status'> &
  Partial<Omit<ImageRecord, 'recordId' | 'revision' | 'createdAt' | 'updatedAt' | 'system' | 'itype'>>;

/**
 * Fields an update may change. `recordId`, `revision`, `createdAt`, `system` and `itype` never change; `tags`
 * change only through {@link MetadataStore.moveTag} and {@link MetadataStore.removeTag}; `updatedAt` is set by the store.
 */
export type ImageRecordPatch = Partial<
  Omit<ImageRecord, 'recordId' | 'revision' | 'createdAt' | 'updatedAt' | 'system' | 'itype' | 'tags' | 'tagAccess'>
>;

/**
 * camelCase field → upstream wire/Mongo field name. Fields absent from this table (`recordId` aside) are additions of
 * this product. Time fields are ms here and seconds upstream (`lastPull / 1000`).
 */
export const IMAGE_RECORD_WIRE_NAMES = {
  recordId: '_id',
  system: 'system',
  itype: 'itype',
  pulltag: 'pulltag',
  tags: 'tag',
  status: 'status',
  statusMessage: 'status_message',
  imageId: 'id',
  format: 'format',
  userAcl: 'userACL',
  groupAcl: 'groupACL',
  private: 'private',
  env: 'ENV',
  entrypoint: 'ENTRY',
  cmd: 'CMD',
  workdir: 'WORKDIR',
  labels: 'LABELS',
  user: 'USER',
  lastPull: 'last_pull',
  lastHeartbeat: 'last_heartbeat',
  expiration: 'expiration',
  filepath: 'filepath',
} as const satisfies Partial<Record<keyof ImageRecord, string>>;

/** One row of lookup metrics (upstream `metrics` collection: `{user, uid, system, type, tag, id, time}`). */
export interface LookupMetric {
  /** User name of the caller. */
  readonly user: string;
  /** uid of the caller. */
  readonly uid: number;
  /** System the lookup was for. */
  readonly system: string;
  /** Image type (upstream `type`). */
  readonly itype: string;
  /** Tag looked up. */
  readonly tag: string;
  /** Image id the lookup resolved to. */
  readonly imageId: string;
  /** Epoch ms of the lookup (upstream `time`, seconds). */
  readonly time: number;
}

/** Fill a {@link NewImageRecord}'s omitted fields with their empty values (used by every store). */
export function fillImageRecord(
  input: NewImageRecord,
  assigned: Pick<ImageRecord, 'recordId' | 'createdAt'>,
): ImageRecord {
  return {
    recordId: assigned.recordId,
    revision: 1,
    system: input.system,
    itype: input.itype,
    pulltag: input.pulltag ?? null,
    tags: [...(input.tags ?? [])],
    tagAccess: tagAccessFor(input.tags ?? [], input.tagAccess ?? [], {
      private: input.private === true,
      userAcl: input.userAcl ?? [],
      groupAcl: input.groupAcl ?? [],
    }),
    requester: input.requester ?? null,
    status: input.status,
    statusMessage: input.statusMessage ?? '',
    imageId: input.imageId ?? null,
    manifestDigest: input.manifestDigest ?? null,
    format: input.format ?? 'squashfs',
    userAcl: [...(input.userAcl ?? [])],
    groupAcl: [...(input.groupAcl ?? [])],
    private: input.private ?? null,
    env: [...(input.env ?? [])],
    entrypoint: input.entrypoint ? [...input.entrypoint] : null,
    cmd: input.cmd ? [...input.cmd] : null,
    workdir: input.workdir ?? null,
    labels: { ...(input.labels ?? {}) },
    user: input.user ?? null,
    lastPull: input.lastPull ?? null,
    lastHeartbeat: input.lastHeartbeat ?? null,
    expiration: input.expiration ?? null,
    filepath: input.filepath ?? null,
    error: input.error ?? null,
    progress: input.progress ?? null,
    jobId: input.jobId ?? null,
    createdAt: assigned.createdAt,
    updatedAt: assigned.createdAt,
  };
}

/**
 * One {@link TagAccess} per tag, in the order of `tags`: the entry `given` has for the tag, else `fallback`. Entries
 * for tags not in `tags` are dropped.
 * @param tags - the record's tags
 * @param given - entries known so far
 * @param fallback - the ACL of a tag without an entry (the record-level ACL)
 */
export function tagAccessFor(tags: readonly string[], given: readonly TagAccess[], fallback: AccessList): TagAccess[] {
  return [...new Set(tags)].map((tag) => {
    const entry = given.find((candidate) => candidate.tag === tag) ?? fallback;
    return { tag, private: entry.private === true, userAcl: [...entry.userAcl], groupAcl: [...entry.groupAcl] };
  });
}
