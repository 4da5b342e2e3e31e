/**
 * The access model: who may see which tag, which record, and what of it.
 *
 * - Access belongs to a tag at a location, as proved by whoever pulled or imported it: each (system, itype, tag)
 *   carries its own ACL ({@link TagAccess}). Identical content under two tags is one image file and one record, but
 *   each tag keeps its own ACL, so a private pull of content that is public elsewhere never hides the public tag, and a
 *   public pull never shows a private tag.
 * - The image file's ACL (its `.meta`, and the record-level `private`/`userAcl`/`groupAcl` of a READY record) is public
 *   when any public tag proved the content, else the union of its private tags' ACLs. It only widens
 *   ({@link mergeAccess}): a pull never takes an image away from anyone who could use it.
 * - Requests (in-flight and FAILURE records) belong to their requester: the callers named in their ACL (the caller's
 *   uid is always there), or the importing uid. Anyone else gets a masked view ({@link viewFor}).
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type { RegistryLogin } from '../auth/index.js';
import { isInFlightStatus, type AccessList, type ImageRecord, type TagAccess } from '../metadata/index.js';
import { unionIds, type Caller } from './caller.js';

/** Public access. */
export const PUBLIC_ACCESS: AccessList = Object.freeze({
  private: false,
  userAcl: Object.freeze([]) as readonly number[],
  groupAcl: Object.freeze([]) as readonly number[],
});

/** The requester of a pull without a registry login: all such callers share one attempt. */
export const ANONYMOUS_REQUESTER = 'anonymous';

/**
 * The requester key of a pull made with `login` (see {@link ImageRecord.requester}): a hash of user name and password,
 * so a caller with another login, or the same user name with another password, never joins or inherits its attempt.
 * @param login - the registry login the pull will use, if any
 */
export function pullRequester(login: RegistryLogin | undefined): string {
  if (!login) return ANONYMOUS_REQUESTER;
  return `login:${createHash('sha256').update(`shifter-login\u0000${login.username}\u0000${login.password}`).digest('hex').slice(0, 32)}`;
}

/** The requester key of an import by `uid` (an import reads the file as its caller, so each caller has their own). */
export function importRequester(uid: number): string {
  return `uid:${uid}`;
}

/** Whether an access list is public (not private, or private with no ACL at all, as upstream). */
export function isPublicAccess(access: {
  readonly private: boolean | null;
  readonly userAcl: readonly number[];
  readonly groupAcl: readonly number[];
}): boolean {
  return access.private !== true || (access.userAcl.length === 0 && access.groupAcl.length === 0);
}

/** Whether `access` lets `caller` in. */
export function accessAllows(
  access: {
    readonly private: boolean | null;
    readonly userAcl: readonly number[];
    readonly groupAcl: readonly number[];
  },
  caller: Pick<Caller, 'uid' | 'groups'>,
): boolean {
  if (isPublicAccess(access)) return true;
  return access.userAcl.includes(caller.uid) || caller.groups.some((gid) => access.groupAcl.includes(gid));
}

/** The wider of two access lists: public when either is, else private to the union of both ACLs. */
export function mergeAccess(a: AccessList, b: AccessList): AccessList {
  if (isPublicAccess(a) || isPublicAccess(b)) return PUBLIC_ACCESS;
  return { private: true, userAcl: unionIds(a.userAcl, b.userAcl), groupAcl: unionIds(a.groupAcl, b.groupAcl) };
}

/** Whether two access lists admit the same callers. */
export function sameAccess(a: AccessList, b: AccessList): boolean {
  if (isPublicAccess(a) || isPublicAccess(b)) return isPublicAccess(a) && isPublicAccess(b);
  return (
    unionIds(a.userAcl).join(',') === unionIds(b.userAcl).join(',') &&
    unionIds(a.groupAcl).join(',') === unionIds(b.groupAcl).join(',')
  );
}

/** The ACL of a record's image file (record-level fields), normalised. */
export function fileAccessOf(record: Pick<ImageRecord, 'private' | 'userAcl' | 'groupAcl'>): AccessList {
  return isPublicAccess(record)
    ? PUBLIC_ACCESS
    : { private: true, userAcl: [...record.userAcl], groupAcl: [...record.groupAcl] };
}

/** The ACL of `tag` on `record` (its entry; the record-level ACL for a record stored without one). */
export function tagAccessOf(
  record: Pick<ImageRecord, 'tagAccess' | 'private' | 'userAcl' | 'groupAcl'>,
  tag: string,
): AccessList {
  const entry = (record.tagAccess ?? []).find((candidate) => candidate.tag === tag);
  return entry
    ? isPublicAccess(entry)
      ? PUBLIC_ACCESS
      : { private: true, userAcl: [...entry.userAcl], groupAcl: [...entry.groupAcl] }
    : fileAccessOf(record);
}

/** Whether `caller` may see `tag` of `record`. */
export function canSeeTag(record: ImageRecord, tag: string, caller: Pick<Caller, 'uid' | 'groups'>): boolean {
  return record.tags.includes(tag) && accessAllows(tagAccessOf(record, tag), caller);
}

/** The tags of `record` that `caller` may see, in order. */
export function visibleTags(record: ImageRecord, caller: Pick<Caller, 'uid' | 'groups'>): string[] {
  return record.tags.filter((tag) => accessAllows(tagAccessOf(record, tag), caller));
}

/**
 * Whether `caller` made (or is named in) the request `record` stands for: in its ACL (a pull's always holds the
 * requesting uid), or the importing uid.
 */
export function isRequestParty(record: ImageRecord, caller: Pick<Caller, 'uid' | 'groups'>): boolean {
  if (record.requester === `uid:${caller.uid}`) return true;
  return record.userAcl.includes(caller.uid) || caller.groups.some((gid) => record.groupAcl.includes(gid));
}

const IMAGE_STATES = new Set(['READY', 'EXPIRING', 'EXPIRED']);

/**
 * Whether `caller` may see `record` at all: an image (READY, EXPIRING, EXPIRED) through one of its tags (an untagged
 * one through its file's ACL); a request (in flight, FAILURE) when they are a party to it, or when it is known to be
 * public (resolved public, or a pull without a login, which can only reach public content).
 */
export function canSeeRecord(record: ImageRecord, caller: Pick<Caller, 'uid' | 'groups'>): boolean {
  if (IMAGE_STATES.has(record.status)) {
    return record.tags.length === 0 ? accessAllows(record, caller) : visibleTags(record, caller).length > 0;
  }
  return isRequestParty(record, caller) || record.private === false || record.requester === ANONYMOUS_REQUESTER;
}

// Views are cached per frozen record (stores may hand out shared frozen records) and per visible-tag set, so a hot
// lookup keeps answering with one object, whose serialised body the gateway caches.
const views = new WeakMap<ImageRecord, Map<string, ImageRecord>>();

/**
 * What `caller` may be shown of `record`.
 *
 * - An image: its visible tags only (and their access entries); the ACL fields are those of the visible tags merged
 *   ({@link mergeAccess}), so nobody learns of a private tag, or who else holds one, through identical content.
 *   Returns the record itself when the caller sees all of it.
 * - A request the caller is a party to: as it is. Anyone else (a caller sharing the attempt, as anonymous callers and
 *   callers with the same login do): its state only — no ACL, no ids, no digests, no messages beyond the state (and the
 *   progress of a pull resolved public).
 *
 * @returns the view, or null when the caller may not see the record at all
 */
export function viewFor(record: ImageRecord, caller: Pick<Caller, 'uid' | 'groups'>): ImageRecord | null {
  if (IMAGE_STATES.has(record.status)) {
    if (record.tags.length === 0) return accessAllows(record, caller) ? record : null;
    const visible = visibleTags(record, caller);
    if (visible.length === 0) return null;
    const access = visible.map((tag) => tagAccessOf(record, tag)).reduce((a, b) => mergeAccess(a, b));
    if (visible.length === record.tags.length && sameAccess(access, fileAccessOf(record))) return record;
    const key = `${visible.join('\u0000')}\u0001${access.private}\u0001${access.userAcl.join(',')}\u0001${access.groupAcl.join(',')}`;
    let cached = views.get(record);
    const hit = cached?.get(key);
    if (hit) return hit;
    const tagAccess: TagAccess[] = (record.tagAccess ?? []).filter((entry) => visible.includes(entry.tag));
    const view: ImageRecord = {
      ...record,
      pulltag: record.pulltag !== null && visible.includes(record.pulltag) ? record.pulltag : null,
      tags: visible,
      tagAccess,
      private: access.private,
      userAcl: [...access.userAcl],
      groupAcl: [...access.groupAcl],
    };
    if (Object.isFrozen(record)) {
      Object.freeze(view);
      if (!cached) views.set(record, (cached = new Map()));
      if (cached.size < 64) cached.set(key, view);
    }
    return view;
  }
  if (isRequestParty(record, caller)) return record;
  return maskRequest(record);
}

/** A request as a caller who is not its party sees it (see {@link viewFor}). */
export function maskRequest(record: ImageRecord): ImageRecord {
  const resolvedPublic = record.private === false;
  return {
    ...record,
    tags: [],
    tagAccess: [],
    userAcl: [],
    groupAcl: [],
    imageId: null,
    manifestDigest: null,
    filepath: null,
    user: null,
    env: [],
    entrypoint: null,
    cmd: null,
    workdir: null,
    labels: {},
    requester: null,
    progress: resolvedPublic && isInFlightStatus(record.status) ? record.progress : null,
    statusMessage: resolvedPublic && isInFlightStatus(record.status) ? record.statusMessage : record.status,
    error: record.error ? { code: record.error.code, message: 'details go to the requester only' } : null,
  };
}
