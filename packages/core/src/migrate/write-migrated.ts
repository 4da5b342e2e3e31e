/**
 * The only part of the migration that writes to the metadata store. It is kept in this one file so a change of the
 * access model (who may use which tag) changes one function, not the migration.
 *
 * @packageDocumentation
 */
import type { LookupMetric } from '../metadata/image-record.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { MigratedAccess, MigratedImage } from './upstream-records.js';

/** What writing one migrated image did (or, in a dry run, would do). */
export type WriteOutcome =
  | { readonly outcome: 'taken'; readonly recordId: string | null }
  | { readonly outcome: 'unchanged'; readonly recordId: string }
  | { readonly outcome: 'skipped'; readonly reason: string };

function sameAccess(
  a: MigratedAccess,
  record: { private: boolean | null; userAcl: readonly number[]; groupAcl: readonly number[] },
): boolean {
  const sorted = (ids: readonly number[]) => [...ids].sort((x, y) => x - y).join(',');
  return (
    a.private === (record.private === true) &&
    (!a.private || (sorted(a.userAcl) === sorted(record.userAcl) && sorted(a.groupAcl) === sorted(record.groupAcl)))
  );
}

// NOTE (access per tag): with a tag ACL on the store (`moveTag(recordId, tag, access)`, `insert` giving each tag the
// record-level ACL when `tagAccess` is omitted), the sibling may be any READY record of the same image and each
// missing tag moves onto it with `image.access`; `insert` below already gives every tag the record's one ACL.

/**
 * Bring one upstream image into the store, idempotently: a tag that already names this image is left alone, a tag
 * that names a different image (pulled since) stops the record (nothing is overwritten), the remaining tags go onto
 * a READY record of the same image with the same access, or onto a new READY record.
 * @param store - the metadata store
 * @param image - the checked upstream image
 * @param dryRun - only read: report what would be written
 */
export async function writeMigratedImage(
  store: MetadataStore,
  image: MigratedImage,
  dryRun: boolean,
): Promise<WriteOutcome> {
  const missing: string[] = [];
  let existingId: string | null = null;
  for (const tag of image.tags) {
    const current = await store.findReadyByTag(image.system, image.itype, tag);
    if (current && current.imageId !== image.imageId) {
      return {
        outcome: 'skipped',
        reason: `tag ${tag} already names image ${current.imageId} in this gateway's store`,
      };
    }
    if (current) existingId = current.recordId;
    else missing.push(tag);
  }
  if (missing.length === 0 && existingId) return { outcome: 'unchanged', recordId: existingId };
  const sibling = await store.findReadyByImageId(image.system, image.imageId);
  const target = sibling && sibling.itype === image.itype && sameAccess(image.access, sibling) ? sibling : null;
  if (dryRun) return { outcome: 'taken', recordId: target?.recordId ?? null };
  if (target) {
    for (const tag of missing) await store.moveTag(target.recordId, tag);
    return { outcome: 'taken', recordId: target.recordId };
  }
  const record = await store.insert({
    system: image.system,
    itype: image.itype,
    status: 'READY',
    statusMessage: `Migrated from upstream record ${image.upstreamId}`,
    tags: missing,
    imageId: image.imageId,
    // Upstream's ids are not always manifest digests (imports, schema-1 pulls): the next pull resolves the digest.
    manifestDigest: null,
    format: 'squashfs',
    private: image.access.private,
    userAcl: image.access.userAcl,
    groupAcl: image.access.groupAcl,
    env: image.env,
    entrypoint: image.entrypoint,
    cmd: image.cmd,
    workdir: image.workdir,
    labels: image.labels,
    user: image.user,
    lastPull: image.lastPull,
    expiration: image.expiration,
  });
  return { outcome: 'taken', recordId: record.recordId };
}

/**
 * Add upstream's lookup metrics of one system that the store does not hold yet (same user, uid, type, tag, id and
 * time), so a second run adds nothing.
 * @returns how many rows were (or, in a dry run, would be) added
 */
export async function writeMigratedMetrics(
  store: MetadataStore,
  system: string,
  rows: readonly LookupMetric[],
  dryRun: boolean,
): Promise<number> {
  const key = (row: LookupMetric) => JSON.stringify([row.user, row.uid, row.itype, row.tag, row.imageId, row.time]);
  const held = new Set((await store.listLookupMetrics(system, 2 ** 31 - 1)).map(key));
  const fresh: LookupMetric[] = [];
  for (const row of rows) {
    const k = key(row);
    if (held.has(k)) continue;
    held.add(k);
    fresh.push(row);
  }
  if (!dryRun) await store.insertLookupMetrics(fresh);
  return fresh.length;
}
