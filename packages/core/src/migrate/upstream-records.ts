/**
 * Reading upstream Shifter's MongoDB documents (`images` and `metrics` collections) into what this product keeps.
 * Pure functions: each document becomes a {@link MigratedImage} / {@link LookupMetric}, or a reason to skip it.
 *
 * @packageDocumentation
 */
import type { LookupMetric } from '../metadata/image-record.js';

/** Who may use a migrated image: upstream's one ACL per record, as this product's access fields. */
export interface MigratedAccess {
  /** True when only the listed users and groups may use the image. */
  readonly private: boolean;
  /** uids allowed (empty when public). */
  readonly userAcl: readonly number[];
  /** gids allowed (empty when public). */
  readonly groupAcl: readonly number[];
}

/** One upstream READY image, read and checked, ready to be written to the store. */
export interface MigratedImage {
  /** Upstream's `_id`, as text (for the report). */
  readonly upstreamId: string;
  readonly system: string;
  readonly itype: string;
  /** Every tag of the record (upstream's `tag` list). */
  readonly tags: readonly string[];
  /** Upstream's `id`: the file name stem of `<id>.squashfs` (a manifest digest, a v1 layer id or an import hash). */
  readonly imageId: string;
  readonly access: MigratedAccess;
  readonly env: readonly string[];
  readonly entrypoint: readonly string[] | null;
  /** From the `.meta` file (upstream keeps CMD only there). */
  readonly cmd: readonly string[] | null;
  readonly workdir: string | null;
  readonly labels: Readonly<Record<string, string>>;
  /** `USER:` of the `.meta` file (imports), else null. */
  readonly user: string | null;
  /** Epoch ms of upstream's `last_pull`, null when absent. */
  readonly lastPull: number | null;
  /** Epoch ms of upstream's `expiration`, null when absent: such an image is never expired automatically, as upstream. */
  readonly expiration: number | null;
}

/** What the documents say, before the files are checked (`cmd` and `user` come from the `.meta` file). */
export type UpstreamImageFields = Omit<MigratedImage, 'cmd' | 'user'>;

/** Either a value or the reason it was skipped. */
export type Parsed<T> = { readonly ok: T } | { readonly skip: string };

/** An image id the runtime opens: lower-case hexadecimal (upstream's digests, v1 layer ids and import hashes all are). */
export const SAFE_IMAGE_ID = /^[0-9a-f]{1,128}$/;
const TAG = /^[^\s\u0000-\u001f\u007f]{1,1024}$/;

/** Upstream's `_id` (an ObjectId or anything else) as text. */
export function upstreamIdOf(document: Record<string, unknown>): string {
  const id = document._id as { toHexString?: () => string } | string | undefined;
  if (id && typeof id === 'object' && typeof id.toHexString === 'function') return id.toHexString();
  if (id === undefined || id === null) return '(no _id)';
  return typeof id === 'string' ? id : JSON.stringify(id);
}

function idList(value: unknown, what: string): Parsed<number[]> {
  if (value === undefined || value === null) return { ok: [] };
  const items = Array.isArray(value) ? value : [value];
  const ids: number[] = [];
  for (const item of items) {
    const number =
      typeof item === 'object' && item !== null && 'toNumber' in item
        ? (item as { toNumber(): number }).toNumber()
        : item;
    if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0)
      return { skip: `${what} holds ${JSON.stringify(item)}, not an id` };
    ids.push(number);
  }
  return { ok: [...new Set(ids)].sort((a, b) => a - b) };
}

function seconds(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value * 1000) : null;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/**
 * Read one document of upstream's `images` collection.
 *
 * Only READY records of a configured system are taken. Upstream's one ACL becomes the access of every tag of the
 * record: the image is private when `private` is not `false` and an ACL list is non-empty (upstream's `_checkread`),
 * public otherwise. A malformed ACL skips the record rather than publish an image that was meant to be private.
 * @param document - the raw document
 * @param systems - the systems this gateway serves
 */
export function parseUpstreamImage(
  document: Record<string, unknown>,
  systems: ReadonlySet<string>,
): Parsed<UpstreamImageFields> {
  const status = document.status;
  if (status !== 'READY')
    return { skip: `status ${String(status)}: only READY images are migrated (pull it again when needed)` };
  const system = document.system;
  if (typeof system !== 'string' || !systems.has(system))
    return { skip: `system ${JSON.stringify(system)} is not configured on this gateway` };
  const itype = document.itype;
  if (typeof itype !== 'string' || !/^[a-z][a-z0-9]{0,31}$/.test(itype))
    return { skip: `image type ${JSON.stringify(itype)} is not valid` };
  // Upstream's add_tag turns a lone string into a list; both forms exist in old databases.
  const rawTags = typeof document.tag === 'string' ? [document.tag] : stringList(document.tag);
  const tags = [...new Set(rawTags.filter((tag) => TAG.test(tag)))];
  if (tags.length === 0) return { skip: 'the record has no usable tag' };
  const imageId = document.id;
  if (typeof imageId !== 'string' || !SAFE_IMAGE_ID.test(imageId))
    return { skip: `image id ${JSON.stringify(imageId)} is not a hexadecimal id (the only ids the runtime opens)` };
  const format = document.format ?? 'squashfs';
  if (format !== 'squashfs') return { skip: `format ${JSON.stringify(format)}: only squashfs images are supported` };
  const users = idList(document.userACL, 'userACL');
  if ('skip' in users) return users;
  const groups = idList(document.groupACL, 'groupACL');
  if ('skip' in groups) return groups;
  const isPrivate = document.private !== false && (users.ok.length > 0 || groups.ok.length > 0);
  const entry = document.ENTRY;
  const entrypoint = Array.isArray(entry)
    ? stringList(entry)
    : typeof entry === 'string' && entry !== '' && entry !== 'MISSING'
      ? [entry]
      : null;
  const labels: Record<string, string> = {};
  if (document.LABELS && typeof document.LABELS === 'object' && !Array.isArray(document.LABELS)) {
    for (const [key, value] of Object.entries(document.LABELS as Record<string, unknown>))
      if (typeof value === 'string') labels[key] = value;
  }
  const workdir =
    typeof document.WORKDIR === 'string' && document.WORKDIR !== '' && document.WORKDIR !== 'MISSING'
      ? document.WORKDIR
      : null;
  return {
    ok: {
      upstreamId: upstreamIdOf(document),
      system,
      itype,
      tags,
      imageId,
      access: { private: isPrivate, userAcl: isPrivate ? users.ok : [], groupAcl: isPrivate ? groups.ok : [] },
      env: stringList(document.ENV),
      entrypoint: entrypoint && entrypoint.length > 0 ? entrypoint : null,
      workdir,
      labels,
      lastPull: seconds(document.last_pull),
      expiration: seconds(document.expiration),
    },
  };
}

/**
 * Read one document of upstream's `metrics` collection (`{user, uid, system, type, tag, id, time}`).
 * @param document - the raw document
 * @param systems - the systems this gateway serves
 */
export function parseUpstreamMetric(
  document: Record<string, unknown>,
  systems: ReadonlySet<string>,
): Parsed<LookupMetric> {
  const { user, uid, system, type, tag, id, time } = document;
  if (typeof system !== 'string' || !systems.has(system))
    return { skip: `system ${JSON.stringify(system)} is not configured on this gateway` };
  const ms = seconds(time);
  if (
    typeof user !== 'string' ||
    typeof uid !== 'number' ||
    !Number.isSafeInteger(uid) ||
    typeof type !== 'string' ||
    typeof tag !== 'string' ||
    typeof id !== 'string' ||
    ms === null
  ) {
    return { skip: 'not a metrics row of upstream (user, uid, system, type, tag, id, time)' };
  }
  return { ok: { user, uid, system, itype: type, tag, imageId: id, time: ms } };
}
