/**
 * The metadata store on MongoDB (official `mongodb` driver), for gateways with several `serve` instances and remote
 * workers. Tested against FerretDB 1.24 (MongoDB wire protocol on SQLite), so it relies only on plain CRUD, ordinary
 * and unique indexes, and single-document atomic writes — no transactions, no partial indexes, no `$expr`.
 *
 * How the invariants hold without transactions:
 * - **One in-flight record per (system, itype, pulltag, requester):** every document carries `inflightKey`, unique-indexed. It
 *   is the key itself while the record is in flight and `~<recordId>` (unique by construction) otherwise, so a plain
 *   unique index does what a partial one would, and FerretDB enforces it.
 * - **Compare-and-set:** FerretDB 1.x does not apply a filtered update atomically (it reads, then writes by `_id`;
 *   measured here: three of ten concurrent `replaceOne({_id, rev})` calls "won"). The only atomic primitive both
 *   servers share is the unique `_id` on insert, so each read-check-write of one record or job runs under a
 *   short per-document lock: a document `{_id: 'image:<id>'}` in the `locks` collection, inserted to acquire and
 *   deleted to release, with a wall-clock expiry (10 s) so a writer that crashed inside the critical section
 *   does not block others for longer. The write itself is still `replaceOne({_id, revision})`, so on a real
 *   mongod an expired lock cannot cause a lost update either.
 * - **Fast lookups:** FerretDB 1.x filters and sorts in its own process (no index use for fields other than `_id`),
 *   so a query by tag costs a scan of the collection (~35 ms for 300 records here) while a get by `_id` is cheap. The
 *   `tags` collection holds a pointer `{_id: [system, itype, tag], recordId}` per tag, written **before** a tag is
 *   added to a record (insert, moveTag). `findReadyByTag` follows the pointer and checks the record is READY and
 *   carries the tag; a missing pointer means no record has the tag; a stale one (the record lost the tag or is not
 *   READY) falls back to the scan, whose answer then repairs the pointer. The records stay the truth.
 * - Labels are stored as `[{key, value}]` and job payloads, results and progress as JSON strings, because MongoDB
 *   (before 5.0) and FerretDB refuse field names containing `.` or starting with `$` (OCI label keys contain dots).
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Collection, type Db, MongoClient, type MongoClientOptions, ObjectId } from 'mongodb';
import { ShifterError, StoreError } from '../../errors/index.js';
import type { JobError, JobRecord, JsonValue, NewJob } from '../../jobs/job-record.js';
import { type JobTable, JobTransitions } from '../../jobs/job-transitions.js';
import {
  migrateImageRecord,
  pendingStoreSchemaSteps,
  type StoreSchemaStep,
  storeSchemaVersion,
} from '../../metadata/store-schema.js';
import {
  fillImageRecord,
  type AccessList,
  type ImageRecord,
  type ImageRecordPatch,
  type LookupMetric,
  type NewImageRecord,
} from '../../metadata/image-record.js';
import type { ClaimOptions, FailJobOptions, JobFilter } from '../../jobs/job-store.js';
import type { CreateOrGetResult, ImageRecordFilter, UpdateExpectations } from '../../metadata/image-store.js';
import type { MetadataStore, MetadataStoreOptions } from '../../metadata/metadata-store.js';
import {
  applyPatch,
  checkExpectations,
  inFlightConflict,
  inFlightKey,
  inFlightKeyOf,
  recordNotFound,
  statusList,
  storeUnavailable,
  validateNewImageRecord,
  validatePatch,
  withTag,
  withoutTag,
  tagMoveChanges,
} from '../../metadata/store-helpers.js';
import { upgradeRecordAccess } from '../../metadata/access-migration.js';

/** Options of {@link MongoMetadataStore.connect}. */
export interface MongoMetadataStoreOptions extends MetadataStoreOptions {
  /** Connection string, e.g. `mongodb://127.0.0.1:27017/`. Ignored when `client` is given. */
  readonly url?: string;
  /** An already connected client to use; the store then does not close it. */
  readonly client?: MongoClient;
  /** Database name (default `shifter`). */
  readonly database?: string;
  /**
   * Prefix of the collection names (default {@link DEFAULT_COLLECTION_PREFIX}: `shifter_images`, `shifter_metrics`,
   * `shifter_jobs`, …), so the store never shares a collection with upstream Shifter's `images` and `metrics`.
   */
  readonly collectionPrefix?: string;
  /** Extra driver options (timeouts, TLS). */
  readonly clientOptions?: MongoClientOptions;
  /** @internal The record-model steps (default: this code's, `STORE_SCHEMA_STEPS`); tests give others. */
  readonly schemaSteps?: readonly StoreSchemaStep[];
}

interface ImageDocument extends Omit<ImageRecord, 'recordId' | 'labels'> {
  _id: string;
  inflightKey: string;
  labels: { key: string; value: string }[];
}

interface JobDocument extends Omit<JobRecord, 'id' | 'payload' | 'progress' | 'result'> {
  _id: string;
  rev: number;
  payload: string;
  progress: string;
  result: string;
}

interface TagPointerDocument {
  _id: string;
  recordId: string;
}

interface LockDocument {
  _id: string;
  token: string;
  expiresAt: number;
}

interface MetricDocument extends LookupMetric {
  _id?: ObjectId;
}

/** Default prefix of the collection names: upstream Shifter's database may be the same one, with `images`/`metrics`. */
export const DEFAULT_COLLECTION_PREFIX = 'shifter_';

const MAX_CAS_RETRIES = 50;
const DUPLICATE_KEY = 11000;
/** A lock older than this (wall clock) is presumed abandoned by a crashed writer. */
const LOCK_TTL_MS = 10_000;
/** How long a writer waits for a busy document before giving up with a retryable conflict. */
const LOCK_WAIT_MS = 15_000;

/**
 * {@link MetadataStore} on MongoDB or a MongoDB-compatible server (FerretDB).
 *
 * @example
 * ```ts
 * import { MongoMetadataStore } from '@shifter/core/mongo';
 * const store = await MongoMetadataStore.connect({ url: 'mongodb://db:27017/', database: 'shifter' });
 * ```
 */
export class MongoMetadataStore implements MetadataStore {
  readonly #client: MongoClient;
  readonly #ownsClient: boolean;
  readonly #db: Db;
  readonly #images: Collection<ImageDocument>;
  readonly #metrics: Collection<MetricDocument>;
  readonly #jobs: Collection<JobDocument>;
  readonly #locks: Collection<LockDocument>;
  readonly #tagPointers: Collection<TagPointerDocument>;
  readonly #prefix: string;
  readonly #now: () => number;
  readonly #jobTransitions: JobTransitions;
  #closed = false;

  private constructor(client: MongoClient, ownsClient: boolean, db: Db, prefix: string, now: () => number) {
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#db = db;
    this.#images = db.collection<ImageDocument>(`${prefix}images`);
    this.#metrics = db.collection<MetricDocument>(`${prefix}metrics`);
    this.#jobs = db.collection<JobDocument>(`${prefix}jobs`);
    this.#locks = db.collection<LockDocument>(`${prefix}locks`);
    this.#tagPointers = db.collection<TagPointerDocument>(`${prefix}tags`);
    this.#prefix = prefix;
    this.#now = now;
    this.#jobTransitions = new JobTransitions(this.#jobTable(), {
      now,
      newId: () => new ObjectId().toHexString(),
      isClosed: () => this.#closed,
    });
  }

  /**
   * Connect and create the indexes (idempotent).
   * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE` when the server cannot be reached or refuses an index.
   * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` when neither `url` nor `client` is given.
   */
  static async connect(options: MongoMetadataStoreOptions): Promise<MongoMetadataStore> {
    if (!options.client && !options.url) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'MongoMetadataStore needs a url or a client');
    }
    const client =
      options.client ?? new MongoClient(options.url!, { serverSelectionTimeoutMS: 5000, ...options.clientOptions });
    try {
      if (!options.client) await client.connect();
      const store = new MongoMetadataStore(
        client,
        !options.client,
        client.db(options.database ?? 'shifter'),
        options.collectionPrefix ?? DEFAULT_COLLECTION_PREFIX,
        options.now ?? Date.now,
      );
      await store.#refuseForeignDocuments();
      await store.#createIndexes();
      await store.#migrateRecords(options.schemaSteps);
      return store;
    } catch (error) {
      if (!options.client) await client.close().catch(() => undefined);
      throw storeUnavailable(error, 'connecting to MongoDB');
    }
  }

  /**
   * Refuse to start on collections holding documents this store did not write (upstream Shifter's `images` or
   * `metrics` documents, when a prefix makes the names meet): writing next to them would mix two schemas, and upstream
   * would read our records. Every document of ours has `inflightKey` (images) and `imageId` (metrics).
   */
  async #refuseForeignDocuments(): Promise<void> {
    const image = await this.#images.findOne({ inflightKey: { $exists: false } } as never, { projection: { _id: 1 } });
    const metric = await this.#metrics.findOne({ imageId: { $exists: false } } as never, { projection: { _id: 1 } });
    const foreign = image ? this.#images.collectionName : metric ? this.#metrics.collectionName : null;
    if (foreign === null) return;
    throw new StoreError(
      'SHIFTER_STORE_FOREIGN_DATA',
      `collection ${foreign} of database ${this.#db.databaseName} holds documents this store did not write (upstream Shifter's?): ` +
        'use another database or collection prefix, and bring upstream records over with "shifter-gateway migrate-upstream"',
      { details: { database: this.#db.databaseName, collection: foreign } },
    );
  }

  async #createIndexes(): Promise<void> {
    await this.#images.createIndex({ inflightKey: 1 }, { unique: true, name: 'inflight_key_unique' });
    await this.#images.createIndex({ system: 1, status: 1 }, { name: 'system_status' });
    await this.#images.createIndex({ system: 1, itype: 1, tags: 1 }, { name: 'system_itype_tags' });
    await this.#images.createIndex({ system: 1, imageId: 1 }, { name: 'system_image_id' });
    await this.#images.createIndex({ expiration: 1 }, { name: 'expiration' });
    await this.#metrics.createIndex({ system: 1, time: -1 }, { name: 'system_time' });
    await this.#jobs.createIndex({ system: 1, status: 1, createdAt: 1 }, { name: 'system_status_created' });
  }

  // The record model's version (metadata/store-schema.ts) lives in `schema` as {_id: "records", version}. Several
  // gateways may start at once: the migration runs under a lock, and steps are idempotent if one dies half-way.
  async #migrateRecords(schemaSteps: readonly StoreSchemaStep[] | undefined): Promise<void> {
    const schema = this.#db.collection<{ _id: string; version: number }>(`${this.#prefix}schema`);
    const version = storeSchemaVersion(schemaSteps);
    const current = await schema.findOne({ _id: 'records' });
    if (current?.version === version) return;
    pendingStoreSchemaSteps(current?.version, schemaSteps);
    await this.#withLock('schema', async () => {
      const locked = await schema.findOne({ _id: 'records' });
      const steps = pendingStoreSchemaSteps(locked?.version, schemaSteps);
      if (steps.length > 0) {
        for await (const document of this.#images.find({})) {
          const record = migrateImageRecord(this.#toRecord(document)!, steps);
          await this.#images.replaceOne({ _id: document._id }, this.#toDocument(record));
        }
      }
      await schema.updateOne({ _id: 'records' }, { $set: { version } }, { upsert: true });
    });
  }

  async #run<T>(what: string, body: () => Promise<T>): Promise<T> {
    if (this.#closed)
      throw new StoreError('SHIFTER_STORE_UNAVAILABLE', 'the metadata store is closed', { retryable: false });
    try {
      return await body();
    } catch (error) {
      throw storeUnavailable(error, what);
    }
  }

  /**
   * Run `body` holding the lock named `key` (see the module documentation). Locks use the wall clock, not the
   * injected one: they guard real concurrent writers.
   */
  async #withLock<T>(key: string, body: () => Promise<T>): Promise<T> {
    const token = randomBytes(8).toString('hex');
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#locks.insertOne({ _id: key, token, expiresAt: Date.now() + LOCK_TTL_MS });
        break;
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        const held = await this.#locks.findOne({ _id: key });
        if (held && held.expiresAt < Date.now()) await this.#locks.deleteOne({ _id: key, token: held.token });
        if (Date.now() > deadline) {
          throw new StoreError('SHIFTER_JOB_CONFLICT', `${key} stayed locked for ${LOCK_WAIT_MS} ms`, {
            details: { lock: key },
          });
        }
        await sleep(Math.min(2 + attempt * 2, 25) * (0.5 + Math.random()));
      }
    }
    try {
      return await body();
    } finally {
      await this.#locks.deleteOne({ _id: key, token }).catch(() => undefined);
    }
  }

  // ----- image records --------------------------------------------------------------------------------------------

  #toDocument(record: ImageRecord): ImageDocument {
    const { recordId, labels, ...rest } = record;
    return {
      _id: recordId,
      ...rest,
      labels: Object.entries(labels).map(([key, value]) => ({ key, value })),
      inflightKey: inFlightKey(record) ?? `~${recordId}`,
    };
  }

  #toRecord(document: ImageDocument | null): ImageRecord | null {
    if (!document) return null;
    const { _id, inflightKey: _key, labels, ...rest } = document;
    const record = {
      recordId: _id,
      ...rest,
      labels: Object.fromEntries(labels.map(({ key, value }) => [key, value])),
    } as ImageRecord;
    // A document of the old shape (one ACL per record) reads as the model per tag; the migration persists it.
    return upgradeRecordAccess(record) ?? record;
  }

  async #insertRecord(record: ImageRecord): Promise<void> {
    try {
      await this.#images.insertOne(this.#toDocument(record));
    } catch (error) {
      if (isDuplicateKey(error)) throw inFlightConflict(record);
      throw error;
    }
  }

  /**
   * Read-modify-write one record with compare-and-set on its revision, retrying lost races. `change` returns the
   * next record, or the current one for "no change"; it may throw to abort.
   */
  async #casRecord(recordId: string, change: (current: ImageRecord) => ImageRecord): Promise<ImageRecord> {
    return this.#withLock(`image:${recordId}`, () => this.#casRecordLocked(recordId, change));
  }

  async #casRecordLocked(recordId: string, change: (current: ImageRecord) => ImageRecord): Promise<ImageRecord> {
    for (let attempt = 0; attempt < MAX_CAS_RETRIES; attempt++) {
      const current = this.#toRecord(await this.#images.findOne({ _id: recordId }));
      if (!current) throw recordNotFound(recordId);
      const next = change(current);
      if (next === current) return current;
      let matched: number;
      try {
        matched = (await this.#images.replaceOne({ _id: recordId, revision: current.revision }, this.#toDocument(next)))
          .matchedCount;
      } catch (error) {
        if (isDuplicateKey(error)) throw inFlightConflict(next);
        throw error;
      }
      if (matched === 1) return next;
    }
    throw new StoreError(
      'SHIFTER_JOB_CONFLICT',
      `record ${recordId} kept changing; gave up after ${MAX_CAS_RETRIES} tries`,
    );
  }

  /** Point `tag` of (system, itype) at `recordId` (see the module documentation: written before the tag is added). */
  async #pointTag(system: string, itype: string, tag: string, recordId: string): Promise<void> {
    await this.#tagPointers.replaceOne({ _id: JSON.stringify([system, itype, tag]) }, { recordId }, { upsert: true });
  }

  async insert(input: NewImageRecord): Promise<ImageRecord> {
    validateNewImageRecord(input);
    return this.#run('insert', async () => {
      const record = fillImageRecord(input, { recordId: new ObjectId().toHexString(), createdAt: this.#now() });
      for (const tag of record.tags) await this.#pointTag(record.system, record.itype, tag, record.recordId);
      await this.#insertRecord(record);
      return record;
    });
  }

  async createOrGetInFlight(input: NewImageRecord & { readonly pulltag: string }): Promise<CreateOrGetResult> {
    validateNewImageRecord(input);
    const probe = fillImageRecord(input, { recordId: 'probe', createdAt: 0 });
    const key = inFlightKey(probe);
    if (key === null) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        'createOrGetInFlight needs an in-flight status and a pulltag',
      );
    }
    return this.#run('createOrGetInFlight', async () => {
      for (let attempt = 0; attempt < MAX_CAS_RETRIES; attempt++) {
        // Insert first: the unique index answers at once, while finding by key is a scan on FerretDB.
        const record = fillImageRecord(input, { recordId: new ObjectId().toHexString(), createdAt: this.#now() });
        try {
          await this.#images.insertOne(this.#toDocument(record));
          return { record, created: true };
        } catch (error) {
          if (!isDuplicateKey(error)) throw error;
        }
        // Someone else's record is in flight: return it (unless it just left flight; then try again).
        const existing = this.#toRecord(await this.#images.findOne({ inflightKey: key }));
        if (existing) return { record: existing, created: false };
      }
      throw new StoreError('SHIFTER_JOB_CONFLICT', `could not settle the in-flight record for ${input.pulltag}`);
    });
  }

  async get(recordId: string): Promise<ImageRecord | null> {
    return this.#run('get', async () => this.#toRecord(await this.#images.findOne({ _id: recordId })));
  }

  async update(recordId: string, patch: ImageRecordPatch, expectations?: UpdateExpectations): Promise<ImageRecord> {
    validatePatch(patch);
    return this.#run('update', () =>
      this.#casRecord(recordId, (current) => {
        checkExpectations(current, expectations);
        return applyPatch(current, patch, this.#now());
      }),
    );
  }

  async findInFlight(
    system: string,
    itype: string,
    pulltag: string,
    requester: string | null = null,
  ): Promise<ImageRecord | null> {
    const key = inFlightKeyOf(system, itype, pulltag, requester);
    return this.#run('findInFlight', async () => this.#toRecord(await this.#images.findOne({ inflightKey: key })));
  }

  async findReadyByTag(system: string, itype: string, tag: string): Promise<ImageRecord | null> {
    return this.#run('findReadyByTag', async () => {
      const pointer = await this.#tagPointers.findOne({ _id: JSON.stringify([system, itype, tag]) });
      if (!pointer) return null; // every tag gets its pointer before any record carries it
      const pointed = this.#toRecord(await this.#images.findOne({ _id: pointer.recordId }));
      if (
        pointed &&
        pointed.status === 'READY' &&
        pointed.tags.includes(tag) &&
        pointed.system === system &&
        pointed.itype === itype
      ) {
        return pointed;
      }
      const documents = await this.#images
        .find({ system, itype, status: 'READY', tags: tag })
        .sort({ updatedAt: -1, revision: -1 })
        .limit(1)
        .toArray();
      const found = this.#toRecord(documents[0] ?? null);
      if (found) await this.#pointTag(system, itype, tag, found.recordId).catch(() => undefined);
      return found;
    });
  }

  async findReadyByImageId(system: string, imageId: string): Promise<ImageRecord | null> {
    return this.#run('findReadyByImageId', async () => {
      const documents = await this.#images
        .find({ system, imageId, status: 'READY' })
        .sort({ updatedAt: -1 })
        .limit(1)
        .toArray();
      return this.#toRecord(documents[0] ?? null);
    });
  }

  async findByTag(system: string, itype: string, tag: string): Promise<ImageRecord[]> {
    return this.#run('findByTag', async () => {
      const documents = await this.#images
        .find({ system, itype, $or: [{ tags: tag }, { pulltag: tag }] })
        .sort({ createdAt: -1, _id: -1 })
        .toArray();
      return documents.map((d) => this.#toRecord(d)!);
    });
  }

  async moveTag(recordId: string, tag: string, access?: AccessList): Promise<ImageRecord> {
    return this.#run('moveTag', async () => {
      // Pointer, then add, then remove from the others: a concurrent findReadyByTag sees old or new, never nothing.
      const current = await this.#images.findOne({ _id: recordId }, { projection: { system: 1, itype: 1 } });
      if (!current) throw recordNotFound(recordId);
      await this.#pointTag(current.system, current.itype, tag, recordId);
      const target = await this.#casRecord(recordId, (current) =>
        tagMoveChanges(current, tag, access) ? withTag(current, tag, access, this.#now()) : current,
      );
      const others = await this.#images
        .find({ system: target.system, itype: target.itype, tags: tag, _id: { $ne: recordId } })
        .project<{ _id: string }>({ _id: 1 })
        .toArray();
      for (const other of others) {
        await this.#casRecord(other._id, (current) =>
          current.tags.includes(tag) ? withoutTag(current, tag, this.#now()) : current,
        ).catch((error: unknown) => {
          // Deleted meanwhile: nothing left to untag.
          if (!(ShifterError.isInstance(error) && error.code === 'SHIFTER_IMAGE_NOT_FOUND')) throw error;
        });
      }
      return target;
    });
  }

  async removeTag(recordId: string, tag: string): Promise<ImageRecord> {
    return this.#run('removeTag', () =>
      this.#casRecord(recordId, (current) =>
        current.tags.includes(tag) ? withoutTag(current, tag, this.#now()) : current,
      ),
    );
  }

  async list(filter: ImageRecordFilter = {}): Promise<ImageRecord[]> {
    const query: Record<string, unknown> = {};
    if (filter.system !== undefined) query.system = filter.system;
    if (filter.itype !== undefined) query.itype = filter.itype;
    const statuses = statusList(filter.status);
    if (statuses !== undefined) {
      if (statuses.length === 0) return [];
      query.status = { $in: [...statuses] };
    }
    const and: Record<string, unknown>[] = [];
    if (filter.expiresBefore !== undefined) and.push({ expiration: { $ne: null, $lt: filter.expiresBefore } });
    if (filter.lastPullBefore !== undefined)
      and.push({ $or: [{ lastPull: null }, { lastPull: { $lt: filter.lastPullBefore } }] });
    if (and.length > 0) query.$and = and;
    return this.#run('list', async () => {
      let cursor = this.#images.find(query).sort({ createdAt: 1, _id: 1 });
      if (filter.limit !== undefined) cursor = cursor.limit(Math.max(0, Math.floor(filter.limit)));
      if (filter.limit !== undefined && Math.floor(filter.limit) <= 0) return [];
      return (await cursor.toArray()).map((d) => this.#toRecord(d)!);
    });
  }

  async delete(recordId: string, expectations?: Pick<UpdateExpectations, 'expectStatus'>): Promise<boolean> {
    const statuses = statusList(expectations?.expectStatus);
    const query: Record<string, unknown> = { _id: recordId };
    if (statuses !== undefined) query.status = { $in: [...statuses] };
    return this.#run('delete', () =>
      this.#withLock(`image:${recordId}`, async () => (await this.#images.deleteOne(query)).deletedCount === 1),
    );
  }

  // ----- lookup metrics -------------------------------------------------------------------------------------------

  async insertLookupMetrics(rows: readonly LookupMetric[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#run('insertLookupMetrics', async () => {
      await this.#metrics.insertMany(
        rows.map((row) => ({ ...row, _id: new ObjectId() })),
        { ordered: false },
      );
    });
  }

  async listLookupMetrics(system: string, limit: number): Promise<LookupMetric[]> {
    const n = Math.max(0, Math.floor(limit));
    if (n === 0) return [];
    return this.#run('listLookupMetrics', async () => {
      const documents = await this.#metrics.find({ system }).sort({ time: -1, _id: -1 }).limit(n).toArray();
      return documents.map(({ _id, ...row }) => row as LookupMetric).reverse();
    });
  }

  // ----- jobs -----------------------------------------------------------------------------------------------------

  #toJob(document: JobDocument | null): JobRecord | null {
    if (!document) return null;
    const { _id, rev: _rev, payload, progress, result, ...rest } = document;
    return {
      id: _id,
      ...rest,
      payload: JSON.parse(payload) as JsonValue,
      progress: JSON.parse(progress) as JsonValue,
      result: JSON.parse(result) as JsonValue,
    };
  }

  /**
   * The job table under the shared transitions (jobs/job-transitions.ts). Its atomic update is the lock document
   * `job:<id>` plus compare-and-set on the hidden `rev` (see the module documentation): FerretDB applies a filtered
   * update as a read then a write, so the lock is what makes two claims exclusive.
   */
  #jobTable(): JobTable {
    const toJobs = (documents: JobDocument[]): JobRecord[] => documents.map((d) => this.#toJob(d)!);
    return {
      insert: async (job) => {
        await this.#run('createJob', () => this.#jobs.insertOne(this.#toJobDocument(job, 1)));
      },
      get: async (id) => this.#run('getJob', async () => this.#toJob(await this.#jobs.findOne({ _id: id }))),
      update: async (id, change) =>
        this.#run('updateJob', () => this.#withLock(`job:${id}`, () => this.#casJobLocked(id, change))),
      list: async (query) => {
        const filter: Record<string, unknown> = {};
        if (query.system !== undefined) filter.system = query.system;
        if (query.kind !== undefined) filter.kind = query.kind;
        if (query.statuses !== undefined) filter.status = { $in: [...query.statuses] };
        return this.#run('listJobs', async () => {
          let cursor = this.#jobs.find(filter).sort({ createdAt: 1, _id: 1 });
          if (query.limit !== undefined) cursor = cursor.limit(query.limit);
          return toJobs(await cursor.toArray());
        });
      },
      listClaimable: async (now, system) => {
        const filter: Record<string, unknown> = {
          $or: [
            { status: 'queued', notBefore: { $lte: now } },
            { status: 'running', leaseExpiresAt: { $lt: now } },
          ],
        };
        if (system !== undefined) filter.system = system;
        return this.#run('listClaimableJobs', async () =>
          toJobs(await this.#jobs.find(filter).sort({ createdAt: 1, _id: 1 }).toArray()),
        );
      },
      deleteEnded: async (before) =>
        this.#run('pruneJobs', async () => {
          const result = await this.#jobs.deleteMany({
            status: { $in: ['done', 'failed'] },
            updatedAt: { $lt: before },
          });
          return result.deletedCount;
        }),
    };
  }

  /** Read-decide-write of one job, with the job's lock held: compare-and-set on `rev`, retried if it moved. */
  async #casJobLocked(id: string, change: (current: JobRecord) => JobRecord | null): Promise<JobRecord | null> {
    for (let attempt = 0; attempt < MAX_CAS_RETRIES; attempt++) {
      const document = await this.#jobs.findOne({ _id: id });
      if (!document) return null;
      const next = change(this.#toJob(document)!);
      if (!next) return null;
      const { _id, ...rest } = this.#toJobDocument(next, document.rev + 1);
      const result = await this.#jobs.replaceOne({ _id: id, rev: document.rev }, rest);
      if (result.matchedCount === 1) return next;
    }
    throw new StoreError('SHIFTER_JOB_CONFLICT', `job ${id} kept changing; gave up after ${MAX_CAS_RETRIES} tries`);
  }

  #toJobDocument(job: JobRecord, rev: number): JobDocument {
    const { id, payload, progress, result, ...rest } = job;
    return {
      _id: id,
      ...rest,
      rev,
      payload: JSON.stringify(payload ?? null),
      progress: JSON.stringify(progress ?? null),
      result: JSON.stringify(result ?? null),
    };
  }

  createJob(input: NewJob): Promise<JobRecord> {
    return this.#jobTransitions.createJob(input);
  }

  getJob(id: string): Promise<JobRecord | null> {
    return this.#jobTransitions.getJob(id);
  }

  claimJob(id: string, options: ClaimOptions): Promise<JobRecord | null> {
    return this.#jobTransitions.claimJob(id, options);
  }

  claimNextJob(
    system: string,
    options: ClaimOptions & { readonly onExhausted?: (job: JobRecord) => void },
  ): Promise<JobRecord | null> {
    return this.#jobTransitions.claimNextJob(system, options);
  }

  heartbeatJob(id: string, options: ClaimOptions & { readonly progress?: JsonValue }): Promise<JobRecord | null> {
    return this.#jobTransitions.heartbeatJob(id, options);
  }

  completeJob(id: string, owner: string, result?: JsonValue): Promise<JobRecord | null> {
    return this.#jobTransitions.completeJob(id, owner, result);
  }

  failJob(id: string, owner: string, error: JobError, options: FailJobOptions): Promise<JobRecord | null> {
    return this.#jobTransitions.failJob(id, owner, error, options);
  }

  listJobs(filter?: JobFilter): Promise<JobRecord[]> {
    return this.#jobTransitions.listJobs(filter);
  }

  listClaimableJobs(system?: string): Promise<JobRecord[]> {
    return this.#jobTransitions.listClaimableJobs(system);
  }

  pruneJobs(before: number): Promise<number> {
    return this.#jobTransitions.pruneJobs(before);
  }

  /** Drop this store's database (tests; irreversible). */
  async dropDatabase(): Promise<void> {
    await this.#run('dropDatabase', async () => {
      await this.#db.dropDatabase();
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsClient) await this.#client.close();
  }
}

function isDuplicateKey(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code === DUPLICATE_KEY) return true;
  // FerretDB 1.x reports a unique-index violation on update as InternalError (code 1) carrying its backend's message
  // (SQLite: "UNIQUE constraint failed"; PostgreSQL: SQLSTATE 23505, unique_violation).
  return code === 1 && typeof message === 'string' && /UNIQUE constraint failed|SQLSTATE 23505/.test(message);
}
