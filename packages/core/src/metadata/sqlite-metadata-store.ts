/**
 * The embedded, persistent metadata store on SQLite (better-sqlite3): the gateway's default when no MongoDB is
 * configured. One file, WAL mode, a schema version table; several processes on one host may share the file (workers
 * started as child processes), since every write runs in an `IMMEDIATE` transaction with a busy timeout.
 *
 * @packageDocumentation
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ShifterError, StoreError } from '../errors/index.js';
import type { JobError, JobRecord, JsonValue, NewJob } from '../jobs/job-record.js';
import { type JobTable, JobTransitions } from '../jobs/job-transitions.js';
import {
  fillImageRecord,
  type AccessList,
  type ImageRecord,
  type ImageRecordPatch,
  type LookupMetric,
  type NewImageRecord,
} from './image-record.js';
import type { ClaimOptions, FailJobOptions, JobFilter } from '../jobs/job-store.js';
import type { CreateOrGetResult, ImageRecordFilter, UpdateExpectations } from './image-store.js';
import type { MetadataStore, MetadataStoreOptions } from './metadata-store.js';
import {
  applyPatch,
  checkExpectations,
  inFlightConflict,
  inFlightKey,
  inFlightKeyOf,
  newStoreId,
  recordNotFound,
  statusList,
  storeUnavailable,
  validateNewImageRecord,
  validatePatch,
  withTag,
  withoutTag,
  tagMoveChanges,
} from './store-helpers.js';
import {
  migrateImageRecord,
  pendingStoreSchemaSteps,
  type StoreSchemaStep,
  storeSchemaVersion,
} from './store-schema.js';

/** Options of {@link SqliteMetadataStore}. */
export interface SqliteMetadataStoreOptions extends MetadataStoreOptions {
  /** Database file; its directory is created. `:memory:` gives a private, non-persistent store (tests). */
  readonly path: string;
  /** How long a write waits for another process's lock, ms (default 5000). */
  readonly busyTimeoutMs?: number;
  /** @internal The record-model steps (default: this code's, {@link STORE_SCHEMA_STEPS}); tests give others. */
  readonly schemaSteps?: readonly StoreSchemaStep[];
}

/** Schema version this code writes. Older files are migrated on open; newer ones are refused. */
export const SQLITE_SCHEMA_VERSION = 1;

// Migration n brings the schema from version n to n + 1. Records keep their full JSON in `doc`; the other columns
// exist for indexes and queries and are rewritten together with `doc` in one statement.
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE images (
    record_id TEXT PRIMARY KEY,
    system TEXT NOT NULL,
    itype TEXT NOT NULL,
    pulltag TEXT,
    status TEXT NOT NULL,
    inflight_key TEXT UNIQUE,
    image_id TEXT,
    expiration INTEGER,
    last_pull INTEGER,
    revision INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX images_system_status ON images (system, status);
  CREATE INDEX images_system_image_id ON images (system, image_id);
  CREATE INDEX images_expiration ON images (expiration) WHERE expiration IS NOT NULL;
  CREATE TABLE image_tags (
    record_id TEXT NOT NULL REFERENCES images (record_id) ON DELETE CASCADE,
    system TEXT NOT NULL,
    itype TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (record_id, tag)
  );
  CREATE INDEX image_tags_lookup ON image_tags (system, itype, tag);
  CREATE TABLE lookup_metrics (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    system TEXT NOT NULL,
    time INTEGER NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX lookup_metrics_system_time ON lookup_metrics (system, time);
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    system TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    lease_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL
  );
  CREATE INDEX jobs_claim ON jobs (system, status, created_at);
  `,
];

interface ImageRow {
  doc: string;
}

interface TagRow {
  system: string;
  itype: string;
  tag: string;
}

/** Most findReadyByTag answers kept (a lookup of an unknown tag is an answer too). */
const READY_CACHE_MAX = 10_000;

const readyKey = (system: string, itype: string, tag: string): string => `${system}\u0000${itype}\u0000${tag}`;

/** Freeze a parsed JSON value and everything in it (cached records are shared between callers). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * {@link MetadataStore} on an SQLite file.
 *
 * @example
 * ```ts
 * const store = new SqliteMetadataStore({ path: '/var/lib/shifter/gateway.sqlite' });
 * const { record, created } = await store.createOrGetInFlight({ system: 'demo', itype: 'docker', pulltag: 'alpine:3', status: 'INIT' });
 * ```
 */
export class SqliteMetadataStore implements MetadataStore {
  readonly #db: Database.Database;
  readonly #now: () => number;
  // Prepared once per SQL text: preparing costs more than running the small queries of the hot paths.
  readonly #statements = new Map<string, Database.Statement>();
  // findReadyByTag answers by key (system, itype, tag), frozen. Exact: this connection's writes forget the keys of
  // every tag they touch (before and after the write); a commit by any other connection changes `PRAGMA
  // data_version`, which every cached answer is checked against, and empties the cache.
  readonly #readyByTag = new Map<string, ImageRecord | null>();
  #dataVersion: number | undefined;
  #closed = false;
  readonly #jobs: JobTransitions;

  /**
   * Open (creating or migrating) the database.
   * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE` when the file cannot be opened, or has a newer schema
   *   version than this code knows (not retryable then).
   */
  constructor(options: SqliteMetadataStoreOptions) {
    this.#now = options.now ?? Date.now;
    this.#jobs = new JobTransitions(this.#jobTable(), {
      now: this.#now,
      newId: newStoreId,
      isClosed: () => this.#closed,
    });
    try {
      // SECURITY: the database holds ACLs and, while a private pull runs, its registry login: a directory this store
      // creates is the gateway's alone.
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      this.#db = new Database(options.path);
      this.#db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
      if (options.path !== ':memory:') this.#db.pragma('journal_mode = WAL');
      // NOTE: NORMAL is durable across process crashes in WAL mode; only a power loss may drop the last commits.
      this.#db.pragma('synchronous = NORMAL');
      this.#db.pragma('foreign_keys = ON');
      this.#migrate(options.schemaSteps);
    } catch (error) {
      throw storeUnavailable(error, `opening ${options.path}`);
    }
  }

  #stmt(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #migrate(schemaSteps: readonly StoreSchemaStep[] | undefined): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const migrate = this.#db.transaction(() => {
      const row = this.#stmt('SELECT version FROM schema_version').get() as { version: number } | undefined;
      let version = row?.version ?? 0;
      if (version > SQLITE_SCHEMA_VERSION) {
        throw new StoreError(
          'SHIFTER_STORE_UNAVAILABLE',
          `database schema version ${version} is newer than this Shifter supports (${SQLITE_SCHEMA_VERSION})`,
          { retryable: false },
        );
      }
      while (version < SQLITE_SCHEMA_VERSION) this.#db.exec(MIGRATIONS[version++]!);
      if (row) this.#stmt('UPDATE schema_version SET version = ?').run(version);
      else this.#stmt('INSERT INTO schema_version (version) VALUES (?)').run(version);
      this.#migrateRecords(schemaSteps);
    });
    migrate.immediate();
  }

  // The record model's version (store-schema.ts), migrated in the same transaction as the table layout.
  #migrateRecords(schemaSteps: readonly StoreSchemaStep[] | undefined): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS store_schema (version INTEGER NOT NULL)');
    const row = this.#stmt('SELECT version FROM store_schema').get() as { version: number } | undefined;
    const steps = pendingStoreSchemaSteps(row?.version, schemaSteps);
    if (steps.length > 0) {
      for (const { doc } of this.#stmt('SELECT doc FROM images').all() as ImageRow[]) {
        const record = migrateImageRecord(JSON.parse(doc) as ImageRecord, steps);
        this.#replaceRecord(record);
        this.#writeTags(record);
      }
    }
    const version = storeSchemaVersion(schemaSteps);
    if (row) {
      if (row.version !== version) this.#stmt('UPDATE store_schema SET version = ?').run(version);
    } else this.#stmt('INSERT INTO store_schema (version) VALUES (?)').run(version);
  }

  /** Run `body` in an IMMEDIATE transaction, mapping driver errors to catalogue errors. */
  #write<T>(what: string, body: () => T): T {
    this.#assertOpen();
    try {
      return this.#db.transaction(body).immediate();
    } catch (error) {
      throw storeUnavailable(error, what);
    }
  }

  #read<T>(what: string, body: () => T): T {
    this.#assertOpen();
    try {
      return body();
    } catch (error) {
      throw storeUnavailable(error, what);
    }
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new StoreError('SHIFTER_STORE_UNAVAILABLE', 'the metadata store is closed', { retryable: false });
  }

  // ----- image records --------------------------------------------------------------------------------------------

  /** Forget cached answers for the tags `recordId` has in image_tags now (call before changing or deleting them). */
  #forgetTagsOf(recordId: string): void {
    if (this.#readyByTag.size === 0) return;
    const rows = this.#stmt('SELECT system, itype, tag FROM image_tags WHERE record_id = ?').all(recordId) as TagRow[];
    for (const row of rows) this.#readyByTag.delete(readyKey(row.system, row.itype, row.tag));
  }

  /** Forget cached answers for the tags of `record` (its state after a write). */
  #forgetTags(record: ImageRecord): void {
    if (this.#readyByTag.size === 0) return;
    for (const tag of record.tags) this.#readyByTag.delete(readyKey(record.system, record.itype, tag));
  }

  /** Empty the findReadyByTag cache when another connection committed since the last check. */
  #checkDataVersion(): void {
    const version = this.#stmt('PRAGMA data_version').pluck().get() as number;
    if (version !== this.#dataVersion) {
      this.#readyByTag.clear();
      this.#dataVersion = version;
    }
  }

  #getRecord(recordId: string): ImageRecord | null {
    const row = this.#stmt('SELECT doc FROM images WHERE record_id = ?').get(recordId) as ImageRow | undefined;
    return row ? (JSON.parse(row.doc) as ImageRecord) : null;
  }

  #insertRecord(record: ImageRecord): void {
    try {
      this.#stmt(
        `INSERT INTO images (record_id, system, itype, pulltag, status, inflight_key, image_id, expiration, last_pull,
             revision, created_at, updated_at, doc)
           VALUES (@recordId, @system, @itype, @pulltag, @status, @inflightKey, @imageId, @expiration, @lastPull,
             @revision, @createdAt, @updatedAt, @doc)`,
      ).run(this.#columns(record));
    } catch (error) {
      if (isUniqueViolation(error)) throw inFlightConflict(record);
      throw error;
    }
    this.#writeTags(record);
  }

  #replaceRecord(record: ImageRecord): void {
    this.#forgetTagsOf(record.recordId);
    this.#forgetTags(record);
    try {
      this.#stmt(
        `UPDATE images SET pulltag = @pulltag, status = @status, inflight_key = @inflightKey, image_id = @imageId,
             expiration = @expiration, last_pull = @lastPull, revision = @revision, updated_at = @updatedAt, doc = @doc
           WHERE record_id = @recordId`,
      ).run(this.#columns(record));
    } catch (error) {
      if (isUniqueViolation(error)) throw inFlightConflict(record);
      throw error;
    }
  }

  #writeTags(record: ImageRecord): void {
    this.#forgetTagsOf(record.recordId);
    this.#forgetTags(record);
    this.#stmt('DELETE FROM image_tags WHERE record_id = ?').run(record.recordId);
    const insert = this.#stmt('INSERT OR IGNORE INTO image_tags (record_id, system, itype, tag) VALUES (?, ?, ?, ?)');
    for (const tag of record.tags) insert.run(record.recordId, record.system, record.itype, tag);
  }

  #columns(record: ImageRecord): Record<string, unknown> {
    return {
      recordId: record.recordId,
      system: record.system,
      itype: record.itype,
      pulltag: record.pulltag,
      status: record.status,
      inflightKey: inFlightKey(record),
      imageId: record.imageId,
      expiration: record.expiration,
      lastPull: record.lastPull,
      revision: record.revision,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
      doc: JSON.stringify(record),
    };
  }

  async insert(input: NewImageRecord): Promise<ImageRecord> {
    validateNewImageRecord(input);
    return this.#write('insert', () => {
      const record = fillImageRecord(input, { recordId: newStoreId(), createdAt: this.#now() });
      this.#insertRecord(record);
      return record;
    });
  }

  async createOrGetInFlight(input: NewImageRecord & { readonly pulltag: string }): Promise<CreateOrGetResult> {
    validateNewImageRecord(input);
    const candidate = fillImageRecord(input, { recordId: newStoreId(), createdAt: this.#now() });
    const key = inFlightKey(candidate);
    if (key === null) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        'createOrGetInFlight needs an in-flight status and a pulltag',
      );
    }
    return this.#write('createOrGetInFlight', () => {
      const row = this.#stmt('SELECT doc FROM images WHERE inflight_key = ?').get(key) as ImageRow | undefined;
      if (row) return { record: JSON.parse(row.doc) as ImageRecord, created: false };
      this.#insertRecord(candidate);
      return { record: candidate, created: true };
    });
  }

  async get(recordId: string): Promise<ImageRecord | null> {
    return this.#read('get', () => this.#getRecord(recordId));
  }

  async update(recordId: string, patch: ImageRecordPatch, expectations?: UpdateExpectations): Promise<ImageRecord> {
    validatePatch(patch);
    return this.#write('update', () => {
      const current = this.#getRecord(recordId);
      if (!current) throw recordNotFound(recordId);
      checkExpectations(current, expectations);
      const next = applyPatch(current, patch, this.#now());
      this.#replaceRecord(next);
      return next;
    });
  }

  async findInFlight(
    system: string,
    itype: string,
    pulltag: string,
    requester: string | null = null,
  ): Promise<ImageRecord | null> {
    const key = inFlightKeyOf(system, itype, pulltag, requester);
    return this.#read('findInFlight', () => {
      const row = this.#stmt('SELECT doc FROM images WHERE inflight_key = ?').get(key) as ImageRow | undefined;
      return row ? (JSON.parse(row.doc) as ImageRecord) : null;
    });
  }

  /**
   * The newest READY record holding `tag`. Answers are cached (frozen) until a write touches the tag or another
   * connection commits, so repeated lookups of a tag cost one `PRAGMA data_version` instead of a query.
   */
  async findReadyByTag(system: string, itype: string, tag: string): Promise<ImageRecord | null> {
    return this.#read('findReadyByTag', () => {
      this.#checkDataVersion();
      const key = readyKey(system, itype, tag);
      const cached = this.#readyByTag.get(key);
      if (cached !== undefined) return cached;
      const row = this.#stmt(
        `SELECT i.doc FROM image_tags t JOIN images i ON i.record_id = t.record_id
           WHERE t.system = ? AND t.itype = ? AND t.tag = ? AND i.status = 'READY'
           ORDER BY i.updated_at DESC, i.revision DESC LIMIT 1`,
      ).get(system, itype, tag) as ImageRow | undefined;
      const record = row ? deepFreeze(JSON.parse(row.doc) as ImageRecord) : null;
      // Bounded: unknown tags are cached too (as null), so the cache is dropped when full.
      if (this.#readyByTag.size >= READY_CACHE_MAX) this.#readyByTag.clear();
      this.#readyByTag.set(key, record);
      return record;
    });
  }

  async findReadyByImageId(system: string, imageId: string): Promise<ImageRecord | null> {
    return this.#read('findReadyByImageId', () => {
      const row = this.#stmt(
        `SELECT doc FROM images WHERE system = ? AND image_id = ? AND status = 'READY'
           ORDER BY updated_at DESC LIMIT 1`,
      ).get(system, imageId) as ImageRow | undefined;
      return row ? (JSON.parse(row.doc) as ImageRecord) : null;
    });
  }

  async findByTag(system: string, itype: string, tag: string): Promise<ImageRecord[]> {
    return this.#read('findByTag', () => {
      const rows = this.#stmt(
        `SELECT doc FROM images WHERE system = @system AND itype = @itype AND (pulltag = @tag OR record_id IN
             (SELECT record_id FROM image_tags WHERE system = @system AND itype = @itype AND tag = @tag))
           ORDER BY created_at DESC, rowid DESC`,
      ).all({ system, itype, tag }) as ImageRow[];
      return rows.map((row) => JSON.parse(row.doc) as ImageRecord);
    });
  }

  async moveTag(recordId: string, tag: string, access?: AccessList): Promise<ImageRecord> {
    // SQLite has transactions, so both halves of the move happen at once here; the documented order (add, then
    // remove) matters for stores without them.
    return this.#write('moveTag', () => {
      const target = this.#getRecord(recordId);
      if (!target) throw recordNotFound(recordId);
      const now = this.#now();
      const others = this.#stmt(
        `SELECT i.doc FROM image_tags t JOIN images i ON i.record_id = t.record_id
           WHERE t.system = ? AND t.itype = ? AND t.tag = ? AND t.record_id <> ?`,
      ).all(target.system, target.itype, tag, recordId) as ImageRow[];
      for (const row of others) {
        const next = withoutTag(JSON.parse(row.doc) as ImageRecord, tag, now);
        this.#replaceRecord(next);
        this.#writeTags(next);
      }
      if (!tagMoveChanges(target, tag, access)) return target;
      const next = withTag(target, tag, access, now);
      this.#replaceRecord(next);
      this.#writeTags(next);
      return next;
    });
  }

  async removeTag(recordId: string, tag: string): Promise<ImageRecord> {
    return this.#write('removeTag', () => {
      const target = this.#getRecord(recordId);
      if (!target) throw recordNotFound(recordId);
      if (!target.tags.includes(tag)) return target;
      const next = withoutTag(target, tag, this.#now());
      this.#replaceRecord(next);
      this.#writeTags(next);
      return next;
    });
  }

  async list(filter: ImageRecordFilter = {}): Promise<ImageRecord[]> {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (filter.system !== undefined) {
      where.push('system = @system');
      params.system = filter.system;
    }
    if (filter.itype !== undefined) {
      where.push('itype = @itype');
      params.itype = filter.itype;
    }
    const statuses = statusList(filter.status);
    if (statuses !== undefined) {
      if (statuses.length === 0) return [];
      where.push(`status IN (${statuses.map((_, i) => `@status${i}`).join(', ')})`);
      statuses.forEach((status, i) => (params[`status${i}`] = status));
    }
    if (filter.expiresBefore !== undefined) {
      where.push('expiration IS NOT NULL AND expiration < @expiresBefore');
      params.expiresBefore = filter.expiresBefore;
    }
    if (filter.lastPullBefore !== undefined) {
      where.push('(last_pull IS NULL OR last_pull < @lastPullBefore)');
      params.lastPullBefore = filter.lastPullBefore;
    }
    const limit = filter.limit === undefined ? '' : ` LIMIT ${Math.max(0, Math.floor(filter.limit))}`;
    const sql = `SELECT doc FROM images${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, rowid${limit}`;
    return this.#read('list', () =>
      (this.#stmt(sql).all(params) as ImageRow[]).map((row) => JSON.parse(row.doc) as ImageRecord),
    );
  }

  async delete(recordId: string, expectations?: Pick<UpdateExpectations, 'expectStatus'>): Promise<boolean> {
    return this.#write('delete', () => {
      const current = this.#getRecord(recordId);
      if (!current) return false;
      const statuses = statusList(expectations?.expectStatus);
      if (statuses !== undefined && !statuses.includes(current.status)) return false;
      this.#forgetTagsOf(recordId);
      this.#forgetTags(current);
      this.#stmt('DELETE FROM images WHERE record_id = ?').run(recordId);
      return true;
    });
  }

  // ----- lookup metrics -------------------------------------------------------------------------------------------

  async insertLookupMetrics(rows: readonly LookupMetric[]): Promise<void> {
    if (rows.length === 0) return;
    this.#write('insertLookupMetrics', () => {
      const insert = this.#stmt('INSERT INTO lookup_metrics (system, time, doc) VALUES (?, ?, ?)');
      for (const row of rows) insert.run(row.system, row.time, JSON.stringify(row));
    });
  }

  async listLookupMetrics(system: string, limit: number): Promise<LookupMetric[]> {
    const n = Math.max(0, Math.floor(limit));
    return this.#read('listLookupMetrics', () => {
      const rows = this.#stmt(
        'SELECT doc FROM lookup_metrics WHERE system = ? ORDER BY time DESC, seq DESC LIMIT ?',
      ).all(system, n) as { doc: string }[];
      return rows.map((row) => JSON.parse(row.doc) as LookupMetric).reverse();
    });
  }

  // ----- jobs -----------------------------------------------------------------------------------------------------
  // The transitions live in jobs/job-transitions.ts; this store supplies the table: rows keyed by id, and an update
  // that reads, decides and writes inside one IMMEDIATE transaction (atomic across processes sharing the file).

  #jobTable(): JobTable {
    const parse = (rows: { doc: string }[]): JobRecord[] => rows.map((row) => JSON.parse(row.doc) as JobRecord);
    return {
      insert: async (job) => this.#write('createJob', () => this.#saveJob(job, true)),
      get: async (id) => this.#read('getJob', () => this.#getJob(id)),
      update: async (id, change) =>
        this.#write('updateJob', () => {
          const job = this.#getJob(id);
          const next = job && change(job);
          if (next) this.#saveJob(next);
          return next ?? null;
        }),
      list: async (query) => {
        const where: string[] = [];
        const params: Record<string, unknown> = {};
        if (query.system !== undefined) {
          where.push('system = @system');
          params.system = query.system;
        }
        if (query.kind !== undefined) {
          where.push('kind = @kind');
          params.kind = query.kind;
        }
        if (query.statuses !== undefined) {
          where.push(`status IN (${query.statuses.map((_, i) => `@status${i}`).join(', ')})`);
          query.statuses.forEach((status, i) => (params[`status${i}`] = status));
        }
        const limit = query.limit === undefined ? '' : ` LIMIT ${query.limit}`;
        const sql = `SELECT doc FROM jobs${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, rowid${limit}`;
        return this.#read('listJobs', () => parse(this.#stmt(sql).all(params) as { doc: string }[]));
      },
      listClaimable: async (now, system) =>
        this.#read('listClaimableJobs', () =>
          parse(
            this.#stmt(
              `SELECT doc FROM jobs WHERE (@system IS NULL OR system = @system)
                 AND ((status = 'queued' AND not_before <= @now) OR (status = 'running' AND lease_expires_at < @now))
                 ORDER BY created_at, rowid`,
            ).all({ system: system ?? null, now }) as { doc: string }[],
          ),
        ),
      deleteEnded: async (before) =>
        this.#write(
          'pruneJobs',
          () =>
            this.#stmt(`DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < ?`).run(before).changes,
        ),
    };
  }

  #getJob(id: string): JobRecord | null {
    const row = this.#stmt('SELECT doc FROM jobs WHERE id = ?').get(id) as { doc: string } | undefined;
    return row ? (JSON.parse(row.doc) as JobRecord) : null;
  }

  #saveJob(job: JobRecord, insert = false): void {
    const columns = {
      id: job.id,
      system: job.system,
      kind: job.kind,
      status: job.status,
      notBefore: job.notBefore,
      leaseExpiresAt: job.leaseExpiresAt,
      createdAt: job.createdAt,
      updatedAt: job.updatedAt,
      doc: JSON.stringify(job),
    };
    if (insert) {
      this.#stmt(
        `INSERT INTO jobs (id, system, kind, status, not_before, lease_expires_at, created_at, updated_at, doc)
           VALUES (@id, @system, @kind, @status, @notBefore, @leaseExpiresAt, @createdAt, @updatedAt, @doc)`,
      ).run(columns);
    } else {
      this.#stmt(
        `UPDATE jobs SET status = @status, not_before = @notBefore, lease_expires_at = @leaseExpiresAt,
             updated_at = @updatedAt, doc = @doc WHERE id = @id`,
      ).run(columns);
    }
  }

  createJob(input: NewJob): Promise<JobRecord> {
    return this.#jobs.createJob(input);
  }

  getJob(id: string): Promise<JobRecord | null> {
    return this.#jobs.getJob(id);
  }

  claimJob(id: string, options: ClaimOptions): Promise<JobRecord | null> {
    return this.#jobs.claimJob(id, options);
  }

  claimNextJob(
    system: string,
    options: ClaimOptions & { readonly onExhausted?: (job: JobRecord) => void },
  ): Promise<JobRecord | null> {
    return this.#jobs.claimNextJob(system, options);
  }

  heartbeatJob(id: string, options: ClaimOptions & { readonly progress?: JsonValue }): Promise<JobRecord | null> {
    return this.#jobs.heartbeatJob(id, options);
  }

  completeJob(id: string, owner: string, result?: JsonValue): Promise<JobRecord | null> {
    return this.#jobs.completeJob(id, owner, result);
  }

  failJob(id: string, owner: string, error: JobError, options: FailJobOptions): Promise<JobRecord | null> {
    return this.#jobs.failJob(id, owner, error, options);
  }

  listJobs(filter?: JobFilter): Promise<JobRecord[]> {
    return this.#jobs.listJobs(filter);
  }

  listClaimableJobs(system?: string): Promise<JobRecord[]> {
    return this.#jobs.listClaimableJobs(system);
  }

  pruneJobs(before: number): Promise<number> {
    return this.#jobs.pruneJobs(before);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#readyByTag.clear();
    this.#db.close();
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
