/**
 * The version of the metadata stores' record model, shared by the SQLite and the MongoDB store.
 *
 * Each store keeps the version its records were written under (SQLite: table `store_schema`; MongoDB: the document
 * `{_id: "records"}` of the `schema` collection). On open, a store whose version is older than this code's is
 * migrated: every image record goes through the pending {@link StoreSchemaStep}s, then the new version is written.
 * A store written by a newer Shifter is refused (`SHIFTER_STORE_SCHEMA_NEWER`, exit 78), so an older gateway
 * never rewrites records it does not understand. A store that has no version yet (created before versioning) counts
 * as version 1. docs/upgrade.md tells admins how to back up and upgrade.
 *
 * SQLite's table layout has its own, internal version (`schema_version`); this module is about the records.
 *
 * @packageDocumentation
 */
import { upgradeRecordAccess } from './access-migration.js';
import { StoreError } from '../errors/index.js';
import type { ImageRecord } from './image-record.js';

/** A step of the record model: turns an image record of version `to - 1` into one of version `to`. */
export interface StoreSchemaStep {
  /** The version this step produces (the first step produces 2). */
  readonly to: number;
  /** One line for the gateway's log and docs/upgrade.md. */
  readonly description: string;
  /**
   * The record as version `to` stores it. Must be idempotent: a store that stops half-way through a migration runs
   * the step again over every record on the next open (the version is written after the records).
   */
  readonly migrateImage: (record: ImageRecord) => ImageRecord;
}

/** Version 1: the record model of the first release (and of stores created before versioning). */
export const STORE_SCHEMA_BASE_VERSION = 1;

/** The steps this code knows, in order (`steps[i].to === i + 2`). */
export const STORE_SCHEMA_STEPS: readonly StoreSchemaStep[] = [
  {
    to: 2,
    description: 'access per tag: each (system, type, tag) carries its own ACL, failures are keyed by requester',
    migrateImage: (record) => upgradeRecordAccess(record) ?? record,
  },
];

/** The record-model version of `steps` (this code's, by default). */
export function storeSchemaVersion(steps: readonly StoreSchemaStep[] = STORE_SCHEMA_STEPS): number {
  return STORE_SCHEMA_BASE_VERSION + steps.length;
}

/**
 * The steps that bring a store of version `stored` (undefined: never versioned) to the version of `steps`.
 * @throws {@link StoreError} `SHIFTER_STORE_SCHEMA_NEWER` when the store is newer than `steps` know;
 *   `SHIFTER_STORE_UNAVAILABLE` (not retryable) for an invalid stored version or `steps` out of order.
 */
export function pendingStoreSchemaSteps(
  stored: number | undefined,
  steps: readonly StoreSchemaStep[] = STORE_SCHEMA_STEPS,
): readonly StoreSchemaStep[] {
  steps.forEach((step, i) => {
    if (step.to !== STORE_SCHEMA_BASE_VERSION + i + 1) {
      throw new StoreError(
        'SHIFTER_STORE_UNAVAILABLE',
        `store schema step ${i} produces version ${step.to}, expected ${i + 2}`,
        {
          retryable: false,
        },
      );
    }
  });
  const version = stored ?? STORE_SCHEMA_BASE_VERSION;
  const supported = storeSchemaVersion(steps);
  if (!Number.isInteger(version) || version < STORE_SCHEMA_BASE_VERSION) {
    throw new StoreError(
      'SHIFTER_STORE_UNAVAILABLE',
      `the metadata store has an invalid schema version ${String(stored)}`,
      {
        retryable: false,
      },
    );
  }
  if (version > supported) {
    throw new StoreError(
      'SHIFTER_STORE_SCHEMA_NEWER',
      `the metadata store was written by a newer Shifter (record schema version ${version}; this gateway supports up to ${supported}): upgrade this gateway, or restore the backup taken before the upgrade (docs/upgrade.md)`,
      { retryable: false, details: { storeVersion: version, supportedVersion: supported } },
    );
  }
  return steps.slice(version - STORE_SCHEMA_BASE_VERSION);
}

/** Run `record` through `steps` in order. */
export function migrateImageRecord(record: ImageRecord, steps: readonly StoreSchemaStep[]): ImageRecord {
  return steps.reduce((current, step) => step.migrateImage(current), record);
}
