/**
 * Callers and image access: who is asking, and whether they may see an image.
 *
 * @packageDocumentation
 */
import type { AuthorizedLocations } from '../auth/index.js';
import type { ImageRecord } from '../metadata/index.js';

/** A verified caller of the image service. */
export interface Caller {
  /** uid from the munge credential. */
  readonly uid: number;
  /** Primary gid from the munge credential. */
  readonly gid: number;
  /** User name of `uid` on the gateway host (`uid` as text when NSS has no entry). */
  readonly user: string;
  /** The credential's gid plus the user's groups from the gateway host's NSS. */
  readonly groups: readonly number[];
  /** Registry credentials the caller sent in the credential payload, by location name. */
  readonly authorizedLocations: AuthorizedLocations | null;
}

/**
 * Whether `caller` may see `record`. Public images (not private, or private with no ACL at all, as upstream) are
 * visible to everyone; a private image only to uids in its `userAcl` and members of a group in its `groupAcl`.
 *
 * @param record - the image record
 * @param caller - the verified caller
 */
export function canRead(
  record: Pick<ImageRecord, 'private' | 'userAcl' | 'groupAcl'>,
  caller: Pick<Caller, 'uid' | 'groups'>,
): boolean {
  if (record.private !== true) return true;
  if (record.userAcl.length === 0 && record.groupAcl.length === 0) return true;
  if (record.userAcl.includes(caller.uid)) return true;
  return caller.groups.some((gid) => record.groupAcl.includes(gid));
}

/**
 * The sorted union of id lists, without duplicates.
 * @param lists - id lists
 */
export function unionIds(...lists: readonly (readonly number[])[]): number[] {
  return [...new Set(lists.flat())].sort((a, b) => a - b);
}

/** Whether every id of `subset` is in `set`. */
export function containsAll(set: readonly number[], subset: readonly number[]): boolean {
  return subset.every((id) => set.includes(id));
}
