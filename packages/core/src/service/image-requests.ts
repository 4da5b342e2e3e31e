/**
 * The request side of the image service: what `serve` processes answer (lookup, list, pull, import, expiry, metrics,
 * queue). It writes image records and enqueues jobs; it never runs a job.
 *
 * @packageDocumentation
 */
import type { RegistryLogin } from '../auth/index.js';
import type { ShifterConfig, SystemConfig } from '../config/index.js';
import {
  AuthError,
  NotFoundError,
  ShifterError,
  StoreError,
  lookupErrorCode,
  toShifterError,
} from '../errors/index.js';
import type { JobQueue, JsonValue } from '../jobs/index.js';
import { JOB_SECRETS_KEY } from '../jobs/index.js';
import { IN_FLIGHT_STATUSES, type ImageRecord, type LookupMetric, type MetadataStore } from '../metadata/index.js';
import {
  canSeeRecord,
  canSeeTag,
  importRequester,
  isPublicAccess,
  pullRequester,
  tagAccessOf,
  viewFor,
} from './access.js';
import { auditRecord } from './audit.js';
import { containsAll, unionIds, type Caller } from './caller.js';
import type { ImageTags } from './image-tags.js';
import { parseJobPayload } from './jobs/job-payloads.js';
import type { LookupBatcher } from './lookup-batcher.js';
import { checkRegistryAllowed } from './registry-policy.js';
import type { AclRequest, ImportRequest, QueueEntry, ServiceLogger } from './service-types.js';

/** How long a FAILURE record answers re-POSTs of its tag before a new pull may start (clients poll by re-POSTing). */
export const FAILURE_HOLD_MS = 30_000;
/** A lookup rewrites the expiration only when it moved by more than this (keeps the batched writes few). */
export const EXPIRATION_SLACK_MS = 60_000;

const DOCKER = 'docker';

/** What {@link ImageRequests} needs. */
export interface ImageRequestsDeps {
  /** Validated configuration. */
  readonly config: ShifterConfig;
  /** The record, job and metrics methods requests use. */
  readonly store: Pick<
    MetadataStore,
    | 'get'
    | 'update'
    | 'delete'
    | 'list'
    | 'findReadyByTag'
    | 'findInFlight'
    | 'findByTag'
    | 'createOrGetInFlight'
    | 'getJob'
    | 'listLookupMetrics'
  >;
  /** Where jobs go. */
  readonly queue: Pick<JobQueue, 'enqueue'>;
  /** Clock in epoch ms. */
  readonly now: () => number;
  /** Audit and warnings. */
  readonly logger: ServiceLogger;
  /** Tag parsing. */
  readonly tags: ImageTags;
  /** The config of a system ({@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN` when absent). */
  readonly system: (name: string) => SystemConfig;
  /** Expiration of an image used at `now`. */
  readonly expirationFrom: (now: number) => number;
  /** Where lookups put what they record (metrics, expiration touches). */
  readonly batcher: Pick<LookupBatcher, 'recordMetric' | 'touchExpiration' | 'flush'>;
  /** Moves an in-flight record to FAILURE (autoexpire's cleanup of stuck records). */
  readonly failRecord: (recordId: string, error: { code: string; message: string }) => Promise<void>;
}

/**
 * Answers the requests of the image service. Lookups are read-only: what they record (lookup metrics, a pushed
 * expiration) goes to the {@link LookupBatcher}, so a lookup costs one store read.
 */
export class ImageRequests {
  private readonly config: ShifterConfig;
  private readonly store: ImageRequestsDeps['store'];
  private readonly jobs: Pick<JobQueue, 'enqueue'>;
  private readonly now: () => number;
  private readonly logger: ServiceLogger;
  private readonly batcher: ImageRequestsDeps['batcher'];
  private readonly pullUpdateMs: number;

  constructor(private readonly deps: ImageRequestsDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.jobs = deps.queue;
    this.now = deps.now;
    this.logger = deps.logger;
    this.batcher = deps.batcher;
    this.pullUpdateMs = deps.config.jobs.pullUpdateTimeout * 1000;
  }

  private system(name: string): SystemConfig {
    return this.deps.system(name);
  }

  private normalizeTag(itype: string, tag: string): string {
    return this.deps.tags.normalize(itype, tag);
  }

  private parseDockerTag(tag: string) {
    return this.deps.tags.parseDocker(tag);
  }

  private expirationFrom(now: number): number {
    return this.deps.expirationFrom(now);
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

  private requestedAcl(caller: Caller, request: AclRequest): { userAcl: number[]; groupAcl: number[] } {
    const gids = request.allowedGids ?? [];
    return {
      userAcl: unionIds([caller.uid], request.allowedUids ?? []),
      groupAcl: gids.length > 0 ? unionIds([caller.gid], gids) : [],
    };
  }

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
      // Read-only hot path: the new expiration is written by the batcher, with the metrics; the answer shows it now.
      this.batcher.touchExpiration(record.recordId, expiration);
      record = { ...record, expiration };
    }
    if (this.config.metrics) {
      this.batcher.recordMetric({
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
      parseJobPayload(kind, payload);
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
    const payload = { recordId: record.recordId };
    parseJobPayload('expire', payload);
    const job = await this.jobs.enqueue({
      kind: 'expire',
      system: record.system,
      payload,
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
    // Expiration touches of recent lookups land first, so an image in use is not expired.
    await this.batcher.flush();
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
      await this.deps.failRecord(
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
    await this.batcher.flush();
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
