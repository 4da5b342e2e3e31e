/**
 * The image service: the one module that knows image states. The gateway's routes call it; workers run its jobs.
 *
 * Pull: `INIT → PENDING → PULLING → [EXAMINATION] → CONVERSION → TRANSFER → READY | FAILURE`; import:
 * `PENDING → HASHING → TRANSFER → READY`; expiry `EXPIRING → EXPIRED`. Deduplication rests on the store's
 * {@link MetadataStore.createOrGetInFlight}: one in-flight record per (system, itype, tag), so concurrent requests
 * share one job, and a request that finds a job in flight never touches the registry.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RegistryLogin } from '../auth/index.js';
import type { ShifterConfig, SystemConfig } from '../config/index.js';
import { parseDigest, digestHex } from '../digest/index.js';
import {
  AuthError,
  NotFoundError,
  ShifterError,
  StoreError,
  lookupErrorCode,
  toShifterError,
} from '../errors/index.js';
import type { JobContext, JobQueue, JobRecord, JsonValue } from '../jobs/index.js';
import { JOB_SECRETS_KEY } from '../jobs/index.js';
import { writeMetaFile } from '../meta/meta-format.js';
import {
  IN_FLIGHT_STATUSES,
  isInFlightStatus,
  type AccessList,
  type ImageProgress,
  type ImageRecord,
  type ImageRecordPatch,
  type ImageStatus,
  type LookupMetric,
  type MetadataStore,
} from '../metadata/index.js';
import { parseReference, type ImageReference, type ParseReferenceOptions } from '../reference/index.js';
import type { Transfer } from '../transfer/index.js';
import {
  accessAllows,
  canSeeRecord,
  canSeeTag,
  fileAccessOf,
  importRequester,
  isPublicAccess,
  mergeAccess,
  pullRequester,
  PUBLIC_ACCESS,
  sameAccess,
  tagAccessOf,
  viewFor,
} from './access.js';
import { containsAll, unionIds, type Caller } from './caller.js';
import { parseExpirationTimeout } from './expiration.js';
import type { ImagePuller, PullProgress, PullTarget } from './image-puller.js';
import { checkSquashfs, sha256File } from './squashfs-check.js';
import { auditRecord } from './audit.js';
import { copyFileAsCaller, type ImportReadOptions } from './import-reader.js';
import { checkRegistryAllowed } from './registry-policy.js';

const execFileAsync = promisify(execFile);

/** Minimal logger (pino-compatible). */
export interface ServiceLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

const silentLogger: ServiceLogger = { info() {}, warn() {}, error() {} };

/** Options of {@link ImageService}. */
export interface ImageServiceOptions {
  /** Validated configuration. */
  readonly config: ShifterConfig;
  /** Image records, metrics and jobs. The service does not close it. */
  readonly store: MetadataStore;
  /** Dispatches jobs. The service does not close it. */
  readonly queue: JobQueue;
  /** Transfer of each system (called on workers only). */
  readonly transferFor: (system: string) => Transfer;
  /** Registry side of pulls (called on workers only). */
  readonly puller: ImagePuller;
  /** Clock in epoch ms (tests). */
  readonly now?: () => number;
  /** Log sink. */
  readonly logger?: ServiceLogger;
  /**
   * Copies a file to import, reading it as the caller (see {@link copyFileAsCaller}, the default: regular files
   * only, checked on the open descriptor, up to `limits.maxImportBytes`, under `limits.importTimeoutMs` and the
   * job's signal).
   */
  readonly readFileAs?: (
    caller: ImportCaller,
    path: string,
    destination: string,
    options: ImportReadOptions,
  ) => Promise<unknown>;
}

/** The parts of a caller an import job keeps (no registry credentials). */
export interface ImportCaller {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly user: string;
}

/** ACL lists a pull or import request asks for. */
export interface AclRequest {
  /** Extra uids (the caller's uid is always added). */
  readonly allowedUids?: readonly number[] | undefined;
  /** Extra gids (the caller's gid is added when any are given, as upstream). */
  readonly allowedGids?: readonly number[] | undefined;
}

/** Import request fields. */
export interface ImportRequest extends AclRequest {
  /** Absolute path of the squashfs file on the target system. */
  readonly filepath: string;
  /** Only `squashfs`. */
  readonly format?: string;
}

/** One in-flight entry of {@link ImageService.queue}. */
export interface QueueEntry {
  readonly status: ImageStatus;
  readonly image: string;
  readonly status_message: string;
}

/** How long a FAILURE record answers re-POSTs of its tag before a new pull may start (clients poll by re-POSTing). */
export const FAILURE_HOLD_MS = 30_000;
/** Shortest interval between two progress writes of one record. */
const PROGRESS_INTERVAL_MS = 250;
/** A lookup rewrites the expiration only when it moved by more than this (keeps lookups read-only under load). */
const EXPIRATION_SLACK_MS = 60_000;
/** Lookup metrics are written in batches at least this often. */
const METRICS_FLUSH_MS = 1000;

const DOCKER = 'docker';
const CUSTOM = 'custom';
const CUSTOM_TAG = /^[A-Za-z0-9][A-Za-z0-9_.\-/:@]{0,255}$/;

interface PullPayload {
  readonly recordId: string;
  readonly tag: string;
  /** Erased by the store when the job ends (JOB_SECRETS_KEY). */
  readonly secrets?: { readonly login?: RegistryLogin };
}
interface ImportPayload {
  readonly recordId: string;
  readonly tag: string;
  readonly filepath: string;
  readonly caller: ImportCaller;
}
interface ExpirePayload {
  readonly recordId: string;
}

/**
 * Orchestrates pulls, imports, lookups and expiry over a {@link MetadataStore}, a {@link JobQueue}, transfers and a
 * puller. Request methods (`pull`, `lookup`, …) run in `serve` processes; {@link ImageService.startWorkers} runs the
 * jobs (in the same process on the embedded deployment, in `worker` processes otherwise).
 */
export class ImageService {
  readonly config: ShifterConfig;
  private readonly store: MetadataStore;
  private readonly jobs: JobQueue;
  private readonly transferFor: (system: string) => Transfer;
  private readonly puller: ImagePuller;
  private readonly now: () => number;
  private readonly logger: ServiceLogger;
  private readonly pullUpdateMs: number;
  private readonly expirationMs: number;
  private readonly readFileAs: (
    caller: ImportCaller,
    path: string,
    destination: string,
    options: ImportReadOptions,
  ) => Promise<unknown>;
  private metricsBuffer: LookupMetric[] = [];
  private metricsTimer: NodeJS.Timeout | undefined;
  private readonly progressWrittenAt = new Map<string, number>();
  private readonly progressStatus = new Map<string, ImageStatus>();
  private readonly parsedTags = new Map<string, { key: string; reference: ImageReference }>();
  private readonly referenceOptions: ParseReferenceOptions;

  constructor(options: ImageServiceOptions) {
    this.config = options.config;
    this.store = options.store;
    this.jobs = options.queue;
    this.transferFor = options.transferFor;
    this.puller = options.puller;
    this.now = options.now ?? Date.now;
    this.logger = options.logger ?? silentLogger;
    this.pullUpdateMs = options.config.jobs.pullUpdateTimeout * 1000;
    this.expirationMs = parseExpirationTimeout(options.config.jobs.imageExpirationTimeout);
    this.readFileAs = options.readFileAs ?? copyFileAsCaller;
    this.referenceOptions = {
      locations: Object.fromEntries(
        Object.entries(options.config.registries).map(([name, registry]) => [name, { url: registry.url }]),
      ),
      ...(options.config.defaultRegistry ? { defaultLocation: options.config.defaultRegistry } : {}),
    };
  }

  // ----- helpers ------------------------------------------------------------------------------------------------

  /** Names of configured systems. */
  systems(): string[] {
    return Object.keys(this.config.systems);
  }

  /**
   * The config of a system.
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`
   */
  system(name: string): SystemConfig {
    const system = Object.hasOwn(this.config.systems, name) ? this.config.systems[name] : undefined;
    if (!system)
      throw new NotFoundError(
        'SHIFTER_SYSTEM_UNKNOWN',
        `system ${JSON.stringify(name.slice(0, 128))} is not configured`,
      );
    return system;
  }

  /** Whether the caller is an admin of the system (by user name, exact match). */
  isAdmin(system: string, caller: Pick<Caller, 'user'>): boolean {
    return this.system(system).admins.includes(caller.user);
  }

  private requireAdmin(system: string, caller: Caller): void {
    if (!this.isAdmin(system, caller)) {
      throw new AuthError('SHIFTER_AUTH_FORBIDDEN', `user ${caller.user} is not an admin of system ${system}`);
    }
  }

  private parseDockerTag(tag: string): { key: string; reference: ImageReference } {
    // Parsing is pure, so lookups under load reuse earlier results (bounded: the cache is dropped when full).
    const cached = this.parsedTags.get(tag);
    if (cached) return cached;
    const reference = parseReference(tag, this.referenceOptions);
    // NOTE: records are keyed by the tag as the user wrote it plus ':latest' when it names no tag or digest, as
    // upstream does — but for lookups and pulls alike (upstream only added it on lookup).
    const key = reference.digest || tag.endsWith(`:${reference.tag}`) ? tag : `${tag}:${reference.tag ?? 'latest'}`;
    if (this.parsedTags.size >= 10_000) this.parsedTags.clear();
    const parsed = { key, reference };
    this.parsedTags.set(tag, parsed);
    return parsed;
  }

  /**
   * Validate and normalise an image tag for a type.
   * @throws {@link ShifterError} `SHIFTER_REF_INVALID` for a malformed tag; `SHIFTER_USAGE_INVALID_ARGUMENT` for an
   *   unknown image type
   */
  normalizeTag(itype: string, tag: string): string {
    if (itype === DOCKER) return this.parseDockerTag(tag).key;
    if (itype === CUSTOM) {
      if (!CUSTOM_TAG.test(tag) || tag.split(/[/:]/).some((part) => part === '..' || part === '.')) {
        throw new ShifterError('SHIFTER_REF_INVALID', `invalid custom image tag ${JSON.stringify(tag.slice(0, 200))}`);
      }
      return tag.includes(':') ? tag : `${tag}:latest`;
    }
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `unknown image type ${JSON.stringify(itype.slice(0, 32))}: use docker or custom`,
    );
  }

  private requestedAcl(caller: Caller, request: AclRequest): { userAcl: number[]; groupAcl: number[] } {
    const gids = request.allowedGids ?? [];
    return {
      userAcl: unionIds([caller.uid], request.allowedUids ?? []),
      groupAcl: gids.length > 0 ? unionIds([caller.gid], gids) : [],
    };
  }

  private expirationFrom(now: number): number {
    return now + this.expirationMs;
  }

  // ----- requests -----------------------------------------------------------------------------------------------

  /**
   * Look up a READY image by tag and push its expiration forward (every lookup counts as use).
   *
   * @param system - system name
   * @param itype - `docker` or `custom`
   * @param tag - image tag
   * @param caller - verified caller
   * @returns the caller's view of the READY record (only the tags they may see; see {@link viewFor})
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`; `SHIFTER_IMAGE_NOT_FOUND` when absent or the tag is
   *   private to others (both look the same, so private images do not leak); `SHIFTER_REF_INVALID` for a malformed tag
   */
  async lookup(system: string, itype: string, tag: string, caller: Caller): Promise<ImageRecord> {
    this.system(system);
    const key = this.normalizeTag(itype, tag);
    let record = await this.store.findReadyByTag(system, itype, key);
    if (!record || !canSeeTag(record, key, caller)) {
      throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `no image ${itype}:${key} on system ${system}`);
    }
    const now = this.now();
    const expiration = this.expirationFrom(now);
    if (record.expiration === null || expiration - record.expiration > EXPIRATION_SLACK_MS) {
      record = await this.store.update(record.recordId, { expiration }).catch(() => record!);
    }
    if (this.config.metrics) {
      this.recordMetric({
        user: caller.user,
        uid: caller.uid,
        system,
        itype,
        tag: key,
        imageId: record.imageId ?? '',
        time: now,
      });
    }
    return viewFor(record, caller) ?? record;
  }

  /**
   * READY images of a system the caller may see, each as the caller's view: only the tags they may see (see
   * {@link viewFor}).
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`
   */
  async list(system: string, caller: Caller): Promise<ImageRecord[]> {
    this.system(system);
    const records = await this.store.list({ system, status: 'READY' });
    return records.flatMap((record) => viewFor(record, caller) ?? []);
  }

  /**
   * Start or join a pull. Idempotent: a pull in flight for the tag with the same registry login (anonymous callers
   * share one) is returned (the registry is not contacted); a READY image newer than `pullUpdateTimeout` whose tag the
   * caller may see is returned without a job; a FAILURE of the last {@link FAILURE_HOLD_MS} made with the same login
   * is returned so pollers see it (for a retryable registry failure the READY image, if any, keeps being served
   * instead); otherwise a new job starts. A caller never joins, nor inherits the failure of, an attempt made with
   * another login, so nobody can deny a tag to others by failing first. Everything returned is the caller's view
   * ({@link viewFor}).
   *
   * @param system - system name
   * @param itype - must be `docker`
   * @param tag - image tag
   * @param caller - verified caller; its `authorizedLocations` supply registry credentials
   * @param acl - `allowed_uids` / `allowed_gids`
   * @returns the record the caller should watch (in flight, READY or FAILURE)
   * @throws `SHIFTER_SYSTEM_UNKNOWN`, `SHIFTER_REF_INVALID`, `SHIFTER_USAGE_INVALID_ARGUMENT` (type), store errors
   */
  async pull(system: string, itype: string, tag: string, caller: Caller, acl: AclRequest = {}): Promise<ImageRecord> {
    this.system(system);
    if (itype !== DOCKER) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `only docker images can be pulled (got ${JSON.stringify(itype.slice(0, 32))}); use doimport for custom images`,
      );
    }
    const { key, reference } = this.parseDockerTag(tag);
    checkRegistryAllowed(reference, this.config);
    const requested = this.requestedAcl(caller, acl);
    const login = pickLogin(caller.authorizedLocations, reference.location);
    const requester = pullRequester(login);
    const view = (record: ImageRecord): ImageRecord => viewFor(record, caller) ?? record;

    const inFlight = await this.store.findInFlight(system, itype, key, requester);
    if (inFlight) return view(inFlight);

    const now = this.now();
    const ready = await this.store.findReadyByTag(system, itype, key);
    const readable = ready !== null && canSeeTag(ready, key, caller);
    if (ready && readable) {
      const fresh = now - (ready.lastPull ?? 0) < this.pullUpdateMs;
      const access = tagAccessOf(ready, key);
      const aclCovered =
        isPublicAccess(access) ||
        (containsAll(access.userAcl, requested.userAcl) && containsAll(access.groupAcl, requested.groupAcl));
      if (fresh && aclCovered) return view(await this.touch(ready, now));
    }

    const failure = await this.recentFailure(system, itype, key, requester, now);
    if (failure) {
      const transient = failure.error !== null && lookupErrorCode(failure.error.code).retryable;
      return view(ready && readable && transient ? await this.touch(ready, now) : failure);
    }

    const { record, created } = await this.store.createOrGetInFlight({
      system,
      itype,
      pulltag: key,
      requester,
      status: 'INIT',
      statusMessage: 'Pull requested',
      lastPull: now,
      userAcl: requested.userAcl,
      groupAcl: requested.groupAcl,
      // A pull without a login can only reach public content.
      ...(login ? {} : { private: false }),
    });
    if (!created) return view(record);
    auditRecord(this.logger, 'pull.request', caller, {
      system,
      type: itype,
      tag: key,
      recordId: record.recordId,
      userAcl: requested.userAcl,
      groupAcl: requested.groupAcl,
    });
    const payload: Record<string, JsonValue> = { recordId: record.recordId, tag: key };
    // The login lives under the payload's secrets, which the store erases when the job ends.
    if (login) payload[JOB_SECRETS_KEY] = { login: { username: login.username, password: login.password } };
    return view(await this.dispatch(record, 'pull', system, payload));
  }

  /** A FAILURE of the last {@link FAILURE_HOLD_MS} of this tag, made by this requester (never another's). */
  private async recentFailure(
    system: string,
    itype: string,
    key: string,
    requester: string,
    now: number,
  ): Promise<ImageRecord | undefined> {
    return (await this.store.findByTag(system, itype, key)).find(
      (record) =>
        record.status === 'FAILURE' &&
        record.pulltag === key &&
        record.requester === requester &&
        now - record.updatedAt < FAILURE_HOLD_MS,
    );
  }

  private async dispatch(
    record: ImageRecord,
    kind: 'pull' | 'import',
    system: string,
    payload: Record<string, JsonValue>,
  ): Promise<ImageRecord> {
    try {
      const job = await this.jobs.enqueue({ kind, system, payload, maxAttempts: this.config.jobs.maxAttempts });
      return await this.store.update(
        record.recordId,
        { status: 'PENDING', statusMessage: 'Queued', jobId: job.id },
        { expectStatus: record.status },
      );
    } catch (error) {
      const shifterError = toShifterError(error);
      if (shifterError.code === 'SHIFTER_JOB_CONFLICT') {
        // A worker already moved the record on; report where it is now.
        return (await this.store.get(record.recordId)) ?? record;
      }
      await this.store
        .update(record.recordId, {
          status: 'FAILURE',
          error: { code: shifterError.code, message: shifterError.message },
          progress: null,
        })
        .catch(() => undefined);
      throw shifterError;
    }
  }

  private async touch(record: ImageRecord, now: number): Promise<ImageRecord> {
    const expiration = this.expirationFrom(now);
    if (record.expiration !== null && expiration - record.expiration <= EXPIRATION_SLACK_MS) return record;
    return this.store.update(record.recordId, { expiration }).catch(() => record);
  }

  /**
   * Import a squashfs file the caller can read on the target system. Allowed by `importUsers` (per system, else
   * global): `"all"`, `"none"` or a list of user names.
   *
   * @returns the in-flight (or existing in-flight) record
   * @throws {@link AuthError} `SHIFTER_IMPORT_NOT_ALLOWED`; `SHIFTER_SYSTEM_UNKNOWN`, `SHIFTER_REF_INVALID`,
   *   `SHIFTER_USAGE_INVALID_ARGUMENT`
   */
  async importImage(
    system: string,
    itype: string,
    tag: string,
    caller: Caller,
    request: ImportRequest,
  ): Promise<ImageRecord> {
    const systemConfig = this.system(system);
    const allowed = systemConfig.importUsers ?? this.config.importUsers;
    if (allowed === 'none' || (Array.isArray(allowed) && !allowed.includes(caller.user))) {
      throw new AuthError(
        'SHIFTER_IMPORT_NOT_ALLOWED',
        `user ${caller.user} may not import images on system ${system}`,
      );
    }
    if ((request.format ?? 'squashfs') !== 'squashfs') {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'only squashfs images can be imported');
    }
    if (!request.filepath.startsWith('/') || request.filepath.includes('\0')) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'filepath must be an absolute path');
    }
    const key = this.normalizeTag(itype, tag);
    // Each caller's import is their own attempt: it reads the file as them.
    const requester = importRequester(caller.uid);
    const view = (record: ImageRecord): ImageRecord => viewFor(record, caller) ?? record;
    const inFlight = await this.store.findInFlight(system, itype, key, requester);
    if (inFlight) return view(inFlight);
    // Clients poll an import by re-posting it, as for pulls: a fresh failure answers them instead of a new attempt.
    const now = this.now();
    const failure = await this.recentFailure(system, itype, key, requester, now);
    if (failure) return view(failure);
    const ready = await this.store.findReadyByTag(system, itype, key);
    // The same import again, or a poll just after this tag joined a record of identical content another file made
    // (its filepath is that file's): answered with the image.
    const sameImport =
      ready !== null && (ready.filepath === request.filepath || now - (ready.lastPull ?? 0) < FAILURE_HOLD_MS);
    if (ready && canSeeTag(ready, key, caller) && sameImport && now - (ready.lastPull ?? 0) < this.pullUpdateMs)
      return view(ready);
    const requested = this.requestedAcl(caller, request);
    const isPrivate = (request.allowedUids?.length ?? 0) > 0 || (request.allowedGids?.length ?? 0) > 0;
    const { record, created } = await this.store.createOrGetInFlight({
      system,
      itype,
      pulltag: key,
      requester,
      status: 'INIT',
      statusMessage: 'Import requested',
      lastPull: this.now(),
      filepath: request.filepath,
      user: caller.user,
      private: isPrivate,
      userAcl: isPrivate ? requested.userAcl : [],
      groupAcl: isPrivate ? requested.groupAcl : [],
    });
    if (!created) return view(record);
    auditRecord(this.logger, 'import.request', caller, {
      system,
      type: itype,
      tag: key,
      recordId: record.recordId,
      filepath: request.filepath,
      private: isPrivate,
      userAcl: record.userAcl,
      groupAcl: record.groupAcl,
    });
    const importCaller = { uid: caller.uid, gid: caller.gid, groups: [...caller.groups], user: caller.user };
    return view(
      await this.dispatch(record, 'import', system, {
        recordId: record.recordId,
        tag: key,
        filepath: request.filepath,
        caller: importCaller,
      }),
    );
  }

  /**
   * Admin: expire an image by tag. The record goes to EXPIRING now; a job removes the files (`.meta` first) and
   * marks it EXPIRED.
   * @returns true when expiry started (false when it was already expiring)
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN` for non-admins; `SHIFTER_IMAGE_NOT_FOUND`
   */
  async expire(system: string, itype: string, tag: string, caller: Caller): Promise<boolean> {
    this.system(system);
    const key = this.normalizeTag(itype, tag);
    this.requireAdmin(system, caller);
    auditRecord(this.logger, 'expire.request', caller, { system, type: itype, tag: key });
    const records = await this.store.findByTag(system, itype, key);
    const expiring = records.find((record) => record.status === 'EXPIRING');
    const ready = records.find((record) => record.status === 'READY' && record.tags.includes(key));
    if (!ready) {
      if (expiring) return false;
      throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `no image ${itype}:${key} on system ${system}`);
    }
    return this.startExpiry(ready);
  }

  private async startExpiry(record: ImageRecord): Promise<boolean> {
    try {
      await this.store.update(
        record.recordId,
        { status: 'EXPIRING', statusMessage: 'Expiring' },
        { expectStatus: 'READY' },
      );
    } catch (error) {
      if (toShifterError(error).code === 'SHIFTER_JOB_CONFLICT') return false;
      throw error;
    }
    const job = await this.jobs.enqueue({
      kind: 'expire',
      system: record.system,
      payload: { recordId: record.recordId },
      maxAttempts: this.config.jobs.maxAttempts,
    });
    await this.store.update(record.recordId, { jobId: job.id }).catch(() => undefined);
    return true;
  }

  /**
   * Admin: expire every READY image of the system whose expiration has passed, delete FAILURE records older than
   * `pullUpdateTimeout`, and fail in-flight records whose job is gone or finished (stuck records).
   * @returns image ids whose expiry started
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN`; `SHIFTER_SYSTEM_UNKNOWN`
   */
  async autoexpire(system: string, caller: Caller): Promise<string[]> {
    this.system(system);
    this.requireAdmin(system, caller);
    auditRecord(this.logger, 'autoexpire.request', caller, { system });
    const now = this.now();
    const expired: string[] = [];
    for (const record of await this.store.list({ system, status: 'READY', expiresBefore: now })) {
      if (await this.startExpiry(record)) expired.push(record.imageId ?? record.recordId);
    }
    for (const record of await this.store.list({ system, status: 'FAILURE' })) {
      if (now - record.updatedAt > this.pullUpdateMs)
        await this.store.delete(record.recordId, { expectStatus: 'FAILURE' });
    }
    for (const record of await this.store.list({
      system,
      status: [...IN_FLIGHT_STATUSES],
      lastPullBefore: now - this.pullUpdateMs,
    })) {
      const job = record.jobId ? await this.store.getJob(record.jobId) : null;
      if (job && (job.status === 'queued' || job.status === 'running')) continue;
      await this.fail(
        record.recordId,
        new StoreError('SHIFTER_JOB_LEASE_EXPIRED', 'the pull stopped without finishing and was cleaned up'),
      );
    }
    return expired;
  }

  /**
   * Admin: the last `limit` lookups of a system (newest last); empty when `metrics` is off.
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN`; `SHIFTER_SYSTEM_UNKNOWN`
   */
  async metrics(system: string, caller: Caller, limit: number): Promise<LookupMetric[]> {
    this.system(system);
    this.requireAdmin(system, caller);
    if (!this.config.metrics) return [];
    await this.flushMetrics();
    return this.store.listLookupMetrics(system, limit);
  }

  /**
   * Pulls and imports in flight on a system that `caller` may see: their own (or ones naming them in their ACL), and
   * ones known to be public (resolved public, or pulls without a registry login). Others' private requests are not
   * listed, not even by tag. Without a caller (internal use) every entry is listed.
   * @throws `SHIFTER_SYSTEM_UNKNOWN`
   */
  async queue(system: string, caller?: Caller): Promise<QueueEntry[]> {
    this.system(system);
    const records = await this.store.list({ system, status: [...IN_FLIGHT_STATUSES] });
    return records
      .filter((record) => record.pulltag !== null && (caller === undefined || canSeeRecord(record, caller)))
      .map((record) => ({ status: record.status, image: record.pulltag!, status_message: record.statusMessage }));
  }

  private recordMetric(row: LookupMetric): void {
    this.metricsBuffer.push(row);
    if (this.metricsBuffer.length >= 500) void this.flushMetrics();
    else this.metricsTimer ??= setTimeout(() => void this.flushMetrics(), METRICS_FLUSH_MS).unref();
  }

  /** Write buffered lookup metrics now. Called by {@link close}. */
  async flushMetrics(): Promise<void> {
    if (this.metricsTimer) clearTimeout(this.metricsTimer);
    this.metricsTimer = undefined;
    const rows = this.metricsBuffer;
    this.metricsBuffer = [];
    if (rows.length === 0) return;
    try {
      await this.store.insertLookupMetrics(rows);
    } catch (error) {
      this.logger.warn({ err: error, rows: rows.length }, 'dropping lookup metrics');
    }
  }

  /** Flush metrics. Does not close the store or the queue (their owner does). */
  async close(): Promise<void> {
    await this.flushMetrics();
  }

  // ----- workers ------------------------------------------------------------------------------------------------

  /**
   * Run jobs of the given systems in this process until the queue closes. Before taking jobs for a system it
   * removes temp files a crashed worker left in the image directory and in the scratch directory.
   * @param systems - system names (default: all)
   */
  async startWorkers(systems: readonly string[] = this.systems()): Promise<void> {
    await mkdir(this.config.storage.expandDir, { recursive: true });
    for (const system of systems) {
      this.system(system);
      const removed = await this.transferFor(system).cleanStale();
      const scratch = await this.cleanScratch(system);
      if (removed + scratch > 0) this.logger.info({ system, removed, scratch }, 'removed temp files left by a crash');
      await this.jobs.process(system, (job, context) => this.runJob(job, context), {
        concurrency: this.config.queue.concurrency,
        leaseMs: this.config.jobs.leaseMs,
        onFailed: (job) => this.onJobFailed(job),
      });
    }
  }

  private scratchPrefix(system: string): string {
    return `job-${system}-`;
  }

  private async cleanScratch(system: string): Promise<number> {
    const prefix = this.scratchPrefix(system);
    let removed = 0;
    for (const entry of await readdir(this.config.storage.expandDir).catch(() => [] as string[])) {
      if (!entry.startsWith(prefix)) continue;
      await rm(join(this.config.storage.expandDir, entry), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }

  private async onJobFailed(job: JobRecord): Promise<void> {
    const payload = job.payload as { recordId?: string } | null;
    if (!payload?.recordId) return;
    let error = job.lastError ?? {
      code: 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED',
      message: 'the job failed on every allowed attempt',
    };
    // A claim marks a job exhausted only when its last lease ran out: the worker holding it died on every attempt
    // (a handler's own failure is recorded by the runner with its code). Such a job gets its own code.
    if (error.code === 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED') {
      error = {
        code: 'SHIFTER_JOB_WORKER_LOST',
        message: `the worker died while running this ${job.kind} on all ${job.maxAttempts} attempts`,
      };
    }
    auditRecord(
      this.logger,
      `${job.kind === 'import' ? 'import' : job.kind === 'expire' ? 'expire' : 'pull'}.failed`,
      null,
      { system: job.system, recordId: payload.recordId, jobId: job.id, code: error.code },
    );
    if (job.kind === 'expire') {
      await this.store
        .update(
          payload.recordId,
          { status: 'FAILURE', error, statusMessage: `${error.code}: ${error.message}` },
          { expectStatus: 'EXPIRING' },
        )
        .catch(() => undefined);
      return;
    }
    await this.fail(payload.recordId, error);
  }

  private async fail(recordId: string, error: { code: string; message: string }): Promise<void> {
    await this.store
      .update(
        recordId,
        {
          status: 'FAILURE',
          error: { code: error.code, message: error.message },
          progress: null,
          statusMessage: `${error.code}: ${error.message}`,
        },
        { expectStatus: [...IN_FLIGHT_STATUSES] },
      )
      .catch(() => undefined);
    this.progressWrittenAt.delete(recordId);
    this.progressStatus.delete(recordId);
  }

  /**
   * Run one job (the handler given to the queue). Idempotent: a record no longer in flight is left alone; every
   * step can be redone after a crash.
   */
  async runJob(job: JobRecord, context: JobContext): Promise<JsonValue> {
    try {
      let result: JsonValue;
      if (job.kind === 'pull') result = await this.runPull(job, job.payload as unknown as PullPayload, context);
      else if (job.kind === 'import')
        result = await this.runImport(job, job.payload as unknown as ImportPayload, context);
      else result = await this.runExpire(job, job.payload as unknown as ExpirePayload);
      const recordId = (job.payload as { recordId?: string } | null)?.recordId;
      const imageId = (result as { imageId?: unknown } | null)?.imageId;
      auditRecord(
        this.logger,
        `${job.kind === 'import' ? 'import' : job.kind === 'expire' ? 'expire' : 'pull'}.done`,
        null,
        { system: job.system, recordId, jobId: job.id, imageId: imageId ?? null },
      );
      return result;
    } catch (error) {
      const shifterError = toShifterError(error);
      const recordId = (job.payload as { recordId?: string } | null)?.recordId;
      this.logger.warn(
        { err: error, jobId: job.id, kind: job.kind, code: shifterError.code, attempt: context.attempt },
        'job attempt failed',
      );
      if (recordId && shifterError.retryable && context.attempt < job.maxAttempts && job.kind !== 'expire') {
        await this.store
          .update(
            recordId,
            {
              statusMessage: `attempt ${context.attempt} failed (${shifterError.code}: ${shifterError.message}); retrying`,
              progress: null,
            },
            { expectStatus: [...IN_FLIGHT_STATUSES] },
          )
          .catch(() => undefined);
      }
      throw shifterError;
    }
  }

  private async setState(
    recordId: string,
    status: ImageStatus,
    progress: ImageProgress | null,
    extra: ImageRecordPatch = {},
  ): Promise<ImageRecord> {
    this.progressWrittenAt.set(recordId, this.now());
    this.progressStatus.set(recordId, status);
    return this.store.update(
      recordId,
      { status, progress, statusMessage: progress?.step ?? status, lastHeartbeat: this.now(), ...extra },
      { expectStatus: [...IN_FLIGHT_STATUSES] },
    );
  }

  private reportProgress(recordId: string, status: ImageStatus, progress: ImageProgress, context: JobContext): void {
    const last = this.progressWrittenAt.get(recordId) ?? 0;
    // A change of state is always written; progress within a state at most every PROGRESS_INTERVAL_MS.
    if (this.progressStatus.get(recordId) === status && this.now() - last < PROGRESS_INTERVAL_MS) return;
    this.progressStatus.set(recordId, status);
    this.progressWrittenAt.set(recordId, this.now());
    void this.store
      .update(
        recordId,
        { status, progress, statusMessage: progress.step, lastHeartbeat: this.now() },
        { expectStatus: [...IN_FLIGHT_STATUSES] },
      )
      .catch(() => undefined);
    void context.heartbeat({ status, step: progress.step }).catch(() => undefined);
  }

  private async inFlightRecord(recordId: string): Promise<ImageRecord | null> {
    const record = await this.store.get(recordId);
    return record && isInFlightStatus(record.status) ? record : null;
  }

  private async runPull(job: JobRecord, payload: PullPayload, context: JobContext): Promise<JsonValue> {
    const record = await this.inFlightRecord(payload.recordId);
    if (!record) return { skipped: true };
    const systemConfig = this.system(job.system);
    const transfer = this.transferFor(job.system);
    const { reference } = this.parseDockerTag(payload.tag);
    const target: PullTarget = {
      reference,
      platform: systemConfig.platform,
      login: payload.secrets?.login,
      signal: context.signal,
    };

    await this.setState(record.recordId, 'PULLING', { step: 'Resolving tag' });
    const resolved = await this.puller.resolve(target);
    const digest = parseDigest(resolved.digest);
    const id = digestHex(digest);
    const isPrivate = resolved.private;
    const now = this.now();
    // What this pull proved: the tag is public, or private to the ACL the request asked for.
    const access: AccessList = isPrivate
      ? { private: true, userAcl: [...record.userAcl], groupAcl: [...record.groupAcl] }
      : PUBLIC_ACCESS;
    // Known from here on: whether the queue may show this pull to others.
    await this.setState(record.recordId, 'PULLING', { step: 'Resolved tag' }, { private: isPrivate });

    const existing = await this.store.findReadyByImageId(job.system, id);
    if (existing && (await transfer.exists(id, { signal: context.signal }))) {
      // SECURITY: the image is on the system already, but this pull's registry must still prove, to this pull's
      // login, that it serves every blob of it; a manifest naming someone else's private layers proves nothing.
      await this.setState(record.recordId, 'PULLING', {
        step: 'Image already on the system: checking the registry serves it',
      });
      await this.puller.prove({ ...target, digest });
      await this.setState(record.recordId, 'TRANSFER', { step: 'Image already on the system: updating metadata' });
      await this.attachTag(
        existing,
        record,
        payload.tag,
        access,
        { manifestDigest: digest, now, onDisk: fileAccessOf(existing) },
        transfer,
      );
      return { imageId: id, metadataOnly: true };
    }

    await mkdir(this.config.storage.expandDir, { recursive: true });
    const scratch = await mkdtemp(join(this.config.storage.expandDir, this.scratchPrefix(job.system)));
    try {
      await this.setState(
        record.recordId,
        'PULLING',
        { step: 'Pulling layers' },
        { imageId: id, manifestDigest: digest },
      );
      const examiner = this.config.examiner;
      // The file's ACL: this pull's, widened by a READY record of the same content (whose file this replaces). The
      // puller asks for it once, when it writes the .meta (after the squashfs), so the .meta is written once.
      let fileAcl: AccessList = access;
      const pulled = await this.puller.fetch(
        {
          ...target,
          digest,
          outDir: scratch,
          scratchDir: scratch,
          access: async () => {
            const current = await this.store.findReadyByImageId(job.system, id);
            fileAcl = current ? mergeAccess(fileAccessOf(current), access) : access;
            return isPublicAccess(fileAcl) ? {} : { userACL: [...fileAcl.userAcl], groupACL: [...fileAcl.groupAcl] };
          },
          ...(examiner
            ? {
                examine: async (rootDir: string) => {
                  await this.setState(record.recordId, 'EXAMINATION', { step: 'Examining image' });
                  await runExaminer(examiner, rootDir, id, context.signal);
                },
              }
            : {}),
        },
        (progress) => this.onPullProgress(record.recordId, progress, context),
      );
      const metaPath = pulled.metaPath;
      await this.setState(record.recordId, 'TRANSFER', { step: 'Transferring image' });
      await transfer.put(pulled.squashfsPath, metaPath, id, {
        private: !isPublicAccess(fileAcl),
        signal: context.signal,
        // The scratch files are this job's own and removed below: a local transfer renames instead of copying.
        move: true,
      });

      const metadata = pulled.metadata;
      const patch: ImageRecordPatch = {
        env: metadata.env,
        entrypoint: metadata.entrypoint,
        cmd: metadata.cmd,
        workdir: metadata.workdir,
        labels: this.config.enableLabels ? metadata.labels : {},
        user: metadata.user,
      };
      const raced = await this.store.findReadyByImageId(job.system, id);
      if (raced && raced.recordId !== record.recordId) {
        await this.attachTag(
          raced,
          record,
          payload.tag,
          access,
          { manifestDigest: digest, now, onDisk: fileAcl },
          transfer,
        );
      } else {
        await this.store.update(
          record.recordId,
          {
            ...patch,
            private: !isPublicAccess(fileAcl),
            userAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
            groupAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
            status: 'READY',
            statusMessage: 'Image ready',
            progress: null,
            error: null,
            imageId: id,
            manifestDigest: digest,
            lastPull: now,
            expiration: this.expirationFrom(now),
          },
          { expectStatus: [...IN_FLIGHT_STATUSES] },
        );
        await this.store.moveTag(record.recordId, payload.tag, access);
        await this.settleFileAccess(job.system, id, fileAcl, transfer);
      }
      this.progressWrittenAt.delete(record.recordId);
      this.progressStatus.delete(record.recordId);
      return { imageId: id, metadataOnly: false };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private onPullProgress(recordId: string, progress: PullProgress, context: JobContext): void {
    if (progress.phase === 'download') {
      this.reportProgress(
        recordId,
        'PULLING',
        {
          step: `Pulling layer ${progress.index + 1}/${progress.count}`,
          layer: progress.layer,
          bytesDone: progress.bytesDone,
          bytesTotal: progress.bytesTotal,
        },
        context,
      );
    } else {
      const layer =
        progress.index !== undefined && progress.count !== undefined ? ` ${progress.index + 1}/${progress.count}` : '';
      const status: ImageStatus = progress.step.startsWith('Extracting') ? 'PULLING' : 'CONVERSION';
      this.reportProgress(recordId, status, { step: `${progress.step}${layer}`, layer: progress.layer }, context);
    }
  }

  /**
   * A pull or import found its content already READY on the system (same image id): give `tag` to that record with
   * `access` (merged with the access the tag already has there, when it is there: a re-pull adds to a tag's ACL and
   * never narrows it), widen the image file's ACL to cover it (rewriting the `.meta` when what is on disk differs),
   * and drop the request record. Other tags of the record keep their own access, so nobody loses an image or sees a
   * tag they could not see before.
   *
   * @param onDisk - the ACL the `.meta` on disk has now (the target's file ACL, or what this job just wrote)
   */
  private async attachTag(
    target: ImageRecord,
    request: ImageRecord,
    tag: string,
    access: AccessList,
    update: { manifestDigest?: string; now: number; onDisk: AccessList },
    transfer: Transfer,
  ): Promise<void> {
    const tagAccess = target.tags.includes(tag) ? mergeAccess(tagAccessOf(target, tag), access) : access;
    const fileAcl = mergeAccess(fileAccessOf(target), access);
    if (!sameAccess(fileAcl, update.onDisk) && target.imageId) {
      const scratch = await mkdtemp(join(this.config.storage.expandDir, 'meta-'));
      try {
        const metaPath = join(scratch, `${target.imageId}.meta`);
        writeMetaFile(metaPath, {
          format: 'squashfs',
          entrypoint: target.entrypoint ? [...target.entrypoint] : null,
          cmd: target.cmd ? [...target.cmd] : null,
          workdir: target.workdir,
          env: [...target.env],
          userACL: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
          groupACL: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
          ...(target.user && target.filepath ? { user: target.user } : {}),
        });
        await transfer.putMeta(metaPath, target.imageId, { private: !isPublicAccess(fileAcl) });
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    }
    await this.store.update(target.recordId, {
      private: !isPublicAccess(fileAcl),
      userAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
      groupAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
      ...(update.manifestDigest ? { manifestDigest: update.manifestDigest } : {}),
      lastPull: update.now,
      expiration: this.expirationFrom(update.now),
    });
    await this.store.moveTag(target.recordId, tag, tagAccess);
    await this.store.delete(request.recordId);
    this.progressWrittenAt.delete(request.recordId);
    this.progressStatus.delete(request.recordId);
  }

  /**
   * After a job made its own READY record for image `id`: if concurrent jobs of identical content (from other tags)
   * made READY records of their own meanwhile, the file on disk is the last one written, with that job's ACL. Make the
   * `.meta` (and every such record's file ACL) the merge of them all, so no tag's users lose the image. Whichever job
   * finishes last sees every record, so the file converges on the merge.
   * @param written - the ACL this job wrote into the `.meta`
   */
  private async settleFileAccess(system: string, id: string, written: AccessList, transfer: Transfer): Promise<void> {
    const twins = (await this.store.list({ system, status: 'READY' })).filter((candidate) => candidate.imageId === id);
    if (twins.length < 2) return;
    const merged = twins.map((twin) => fileAccessOf(twin)).reduce((a, b) => mergeAccess(a, b));
    const newest = twins.reduce((a, b) => (b.updatedAt > a.updatedAt ? b : a));
    if (!sameAccess(merged, written)) {
      const scratch = await mkdtemp(join(this.config.storage.expandDir, 'meta-'));
      try {
        const metaPath = join(scratch, `${id}.meta`);
        writeMetaFile(metaPath, {
          format: 'squashfs',
          entrypoint: newest.entrypoint ? [...newest.entrypoint] : null,
          cmd: newest.cmd ? [...newest.cmd] : null,
          workdir: newest.workdir,
          env: [...newest.env],
          userACL: isPublicAccess(merged) ? [] : [...merged.userAcl],
          groupACL: isPublicAccess(merged) ? [] : [...merged.groupAcl],
          ...(newest.user && newest.filepath ? { user: newest.user } : {}),
        });
        await transfer.putMeta(metaPath, id, { private: !isPublicAccess(merged) });
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    }
    for (const twin of twins) {
      if (sameAccess(fileAccessOf(twin), merged)) continue;
      await this.store
        .update(twin.recordId, {
          private: !isPublicAccess(merged),
          userAcl: isPublicAccess(merged) ? [] : [...merged.userAcl],
          groupAcl: isPublicAccess(merged) ? [] : [...merged.groupAcl],
        })
        .catch(() => undefined);
    }
  }

  private async runImport(job: JobRecord, payload: ImportPayload, context: JobContext): Promise<JsonValue> {
    const record = await this.inFlightRecord(payload.recordId);
    if (!record) return { skipped: true };
    const systemConfig = this.system(job.system);
    if (systemConfig.transfer.kind !== 'local') {
      throw new ShifterError(
        'SHIFTER_IMPORT_INVALID',
        'imports are supported on systems with a local image directory only',
      );
    }
    const transfer = this.transferFor(job.system);
    await mkdir(this.config.storage.expandDir, { recursive: true });
    const scratch = await mkdtemp(join(this.config.storage.expandDir, this.scratchPrefix(job.system)));
    try {
      await this.setState(record.recordId, 'HASHING', { step: 'Reading the file as its owner' });
      const copy = join(scratch, 'import.squashfs');
      await this.readFileAs(payload.caller, payload.filepath, copy, {
        maxBytes: this.config.limits.maxImportBytes,
        timeoutMs: this.config.limits.importTimeoutMs,
        signal: context.signal,
      });
      await this.setState(record.recordId, 'HASHING', { step: 'Validating and hashing' });
      await checkSquashfs(copy);
      const id = await sha256File(copy);
      // The caller read these very bytes as themselves: that is the proof of the content.
      const access: AccessList =
        record.private === true
          ? { private: true, userAcl: [...record.userAcl], groupAcl: [...record.groupAcl] }
          : PUBLIC_ACCESS;
      const existing = await this.store.findReadyByImageId(job.system, id);
      if (
        existing &&
        existing.recordId !== record.recordId &&
        (await transfer.exists(id, { signal: context.signal }))
      ) {
        // Identical content is on the system already: the file (and its .meta) stay; this tag joins it.
        await this.setState(
          record.recordId,
          'TRANSFER',
          { step: 'Image already on the system: updating metadata' },
          { imageId: id },
        );
        await this.attachTag(
          existing,
          record,
          payload.tag,
          access,
          { now: this.now(), onDisk: fileAccessOf(existing) },
          transfer,
        );
        return { imageId: id };
      }
      const fileAcl = existing ? mergeAccess(fileAccessOf(existing), access) : access;
      const metaPath = join(scratch, `${id}.meta`);
      writeMetaFile(metaPath, {
        format: 'squashfs',
        entrypoint: null,
        cmd: null,
        workdir: null,
        env: [],
        userACL: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
        groupACL: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
        user: payload.caller.user,
      });
      await this.setState(record.recordId, 'TRANSFER', { step: 'Transferring image' }, { imageId: id });
      await transfer.put(copy, metaPath, id, { private: !isPublicAccess(fileAcl), signal: context.signal });
      const now = this.now();
      const raced = await this.store.findReadyByImageId(job.system, id);
      if (raced && raced.recordId !== record.recordId) {
        await this.attachTag(raced, record, payload.tag, access, { now, onDisk: fileAcl }, transfer);
      } else {
        await this.store.update(
          record.recordId,
          {
            status: 'READY',
            statusMessage: 'Image ready',
            progress: null,
            imageId: id,
            lastPull: now,
            expiration: this.expirationFrom(now),
            private: !isPublicAccess(fileAcl),
            userAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.userAcl],
            groupAcl: isPublicAccess(fileAcl) ? [] : [...fileAcl.groupAcl],
          },
          { expectStatus: [...IN_FLIGHT_STATUSES] },
        );
        await this.store.moveTag(record.recordId, payload.tag, access);
        await this.settleFileAccess(job.system, id, fileAcl, transfer);
      }
      return { imageId: id };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  private async runExpire(job: JobRecord, payload: ExpirePayload): Promise<JsonValue> {
    const record = await this.store.get(payload.recordId);
    if (!record || record.status !== 'EXPIRING') return { skipped: true };
    const id = record.imageId;
    let removed = false;
    // Another READY record may carry the same file (an import and a pull of identical bytes); keep it then.
    const sharing = id ? await this.store.findReadyByImageId(job.system, id) : null;
    if (id && !sharing) removed = await this.transferFor(job.system).remove(id, { format: record.format });
    for (const tag of record.tags) await this.store.removeTag(record.recordId, tag);
    await this.store.update(
      record.recordId,
      { status: 'EXPIRED', statusMessage: 'Image expired' },
      { expectStatus: 'EXPIRING' },
    );
    return { imageId: id, removed };
  }
}

/**
 * Pick the registry login for a location from a caller's `authorized_locations`: the location's own entry, else
 * `default` (upstream's rule). The password is everything after the first `:`.
 */
export function pickLogin(
  locations: Readonly<Record<string, string>> | null,
  location: string | undefined,
): RegistryLogin | undefined {
  if (!locations) return undefined;
  const entry =
    (location !== undefined && Object.hasOwn(locations, location) ? locations[location] : undefined) ??
    (Object.hasOwn(locations, 'default') ? locations.default : undefined);
  if (typeof entry !== 'string') return undefined;
  const colon = entry.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: entry.slice(0, colon), password: entry.slice(colon + 1) };
}

async function runExaminer(examiner: string, rootDir: string, id: string, signal: AbortSignal): Promise<void> {
  try {
    await execFileAsync(examiner, [rootDir, id], { signal, maxBuffer: 4 * 1024 * 1024 });
  } catch (error) {
    const failure = error as { code?: unknown; stderr?: string; stdout?: string };
    throw new ShifterError('SHIFTER_EXAMINATION_FAILED', `the examiner rejected image ${id}`, {
      cause: error,
      details: { exitCode: failure.code, output: String(failure.stderr || failure.stdout || '').slice(0, 2000) },
    });
  }
}
