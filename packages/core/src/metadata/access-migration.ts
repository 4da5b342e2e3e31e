/**
 * Moving stored records onto the access model per tag (each (system, itype, tag) carries its own ACL; the record-level
 * ACL is the image file's). Records written before that model have one ACL per record, as upstream's do: each of their
 * tags gets that ACL, which is exactly what every caller could see before, so nobody gains or loses access.
 *
 * This is the one place that knows the old shape. Both stores call {@link upgradeRecordAccess} on every record when
 * they open (SQLite: `SqliteMetadataStore` `#migrateRecordsToTagAccess`; MongoDB: `MongoMetadataStore`
 * `migrateRecordsToTagAccess`), so a schema-version step can call those as one step.
 *
 * @packageDocumentation
 */
import { tagAccessFor, type ImageRecord } from './image-record.js';

/**
 * Bring one stored record onto the access model per tag.
 *
 * - A record without `tagAccess`, or whose `tagAccess` misses one of its tags or names a tag it does not carry, gets
 *   one entry per tag; a missing entry takes the record-level ACL (`private`, `userAcl`, `groupAcl`).
 * - A record without `requester` gets `requester: null` (it is then keyed as before: by system, itype and pulltag).
 *
 * Pure and idempotent.
 * @param stored - a record as read from a store (possibly of the old shape)
 * @returns the upgraded record, or null when it already follows the model (nothing to write)
 */
export function upgradeRecordAccess(stored: ImageRecord): ImageRecord | null {
  const partial = stored as Partial<ImageRecord> & ImageRecord;
  const tags = partial.tags ?? [];
  const given = Array.isArray(partial.tagAccess) ? partial.tagAccess : [];
  const current =
    Array.isArray(partial.tagAccess) &&
    partial.requester !== undefined &&
    given.length === tags.length &&
    tags.every((tag, index) => given[index]?.tag === tag);
  if (current) return null;
  const tagAccess = tagAccessFor(tags, given, {
    private: partial.private === true,
    userAcl: partial.userAcl ?? [],
    groupAcl: partial.groupAcl ?? [],
  });
  return { ...stored, tags: [...tags], tagAccess, requester: partial.requester ?? null };
}
