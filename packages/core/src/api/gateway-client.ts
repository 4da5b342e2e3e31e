/**
 * `GatewayClient`: the typed HTTP client of the image gateway's REST API, used by `shifterimg`, the runtime's
 * wrapper and site scripts.
 *
 * @packageDocumentation
 */
import type { Dispatcher } from 'undici';
import {
  AuthError,
  ConfigError,
  ERROR_CATALOG,
  type ErrorCode,
  NotFoundError,
  RegistryError,
  ShifterError,
  StoreError,
} from '../errors/index.js';
import { IN_FLIGHT_STATUSES, type ImageStatus } from '../metadata/image-record.js';
// NOTE: only types come from the route contract. Its module builds zod schemas at load time, and `shifterimg lookup`
// must start in well under a quarter second; the checks below are the small structural subset a client needs.
import type { ErrorResponse, ImageResponse } from './routes-contract.js';

/** An image as the gateway reports it (upstream's field names). */
export type GatewayImage = ImageResponse;

/** One entry of the gateway's work queue. */
export interface GatewayQueueEntry {
  /** Current state of the pull or import. */
  status: ImageStatus;
  /** The request as the user typed it (upstream's `pulltag`). */
  image: string;
  /** Progress text, when the gateway sends it. */
  status_message?: string;
}

/** Answer of `GET /api/status`. */
export interface GatewayStatus {
  /** Always `up` when the gateway answered. */
  status: 'up';
  /** Gateway version. */
  version: string;
  /** Names of the systems the gateway serves. */
  systems: string[];
}

/** One lookup metrics row (admin only). */
export interface GatewayMetricsRow {
  user: string;
  uid: number;
  system: string;
  type: string;
  tag: string;
  id: string;
  time: number;
}

/** Answer of an admin expiry request. */
export interface GatewayExpireResult {
  /** True when the expiry was started. */
  status: boolean;
}

/** Answer of an admin autoexpire request. */
export interface GatewayAutoexpireResult {
  /** Ids of the images that were expired. */
  status: string[];
}

/**
 * Produces a fresh credential for one request. `payload` is `""` or the JSON `{"authorized_locations": {…}}`; the
 * result goes verbatim into the `authentication` header. For munge this is `mungeEncode(payload, socketPath)`.
 */
export type GatewayAuthenticator = (payload: string) => Promise<string>;

/** Options of {@link GatewayClient}. */
export interface GatewayClientOptions {
  /** Base URLs of the gateway instances (`http://host:port`); tried in random order until one answers. */
  urls: readonly string[];
  /** The system whose images are asked about (upstream `system` of `udiRoot.conf`). */
  system: string;
  /** Time allowed for one attempt on one URL, in milliseconds (default 60 000; `udiRoot.conf` gives seconds). */
  timeoutMs?: number;
  /** Credential factory; called once per attempt because munge credentials are single-use. Omit for no header. */
  authenticate?: GatewayAuthenticator;
  /** undici dispatcher for every request (custom CA, proxy, `MockAgent` in tests); requests then use fetch. */
  dispatcher?: Dispatcher;
  /**
   * Trust anchors for `https://` gateways, PEM (one string may hold several certificates). Given, they replace
   * Node's default CA store, as `gatewayCaPath` in `udiRoot.conf` replaces OpenSSL's for the runtime; see
   * {@link readTrustAnchors}. Ignored when a `dispatcher` is given (configure the dispatcher instead).
   */
  ca?: string | readonly string[];
  /** Source of randomness for the URL order (default `Math.random`); tests pass a fixed one. */
  random?: () => number;
  /**
   * The pause between the polls of {@link GatewayClient.pullAndWait} (default: a timer; resolves early when `signal`
   * aborts). Tests pass one that records the pause instead of waiting for it.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Options of {@link GatewayClient.pull}. */
export interface GatewayPullOptions {
  /** Besides the caller, uids allowed to use the image when it turns out private. */
  allowedUids?: readonly number[];
  /** Gids allowed to use the image when it turns out private. */
  allowedGids?: readonly number[];
  /**
   * Registry credentials by location (`default` for any other): `{ "default": "user:password" }`. They travel only
   * inside the signed credential's payload (`authorized_locations`), never in the URL or body.
   */
  credentials?: Readonly<Record<string, string>>;
}

/** Options of {@link GatewayClient.pullAndWait}. */
export interface GatewayWaitOptions {
  /** Pause between polls in milliseconds (default 500, as upstream). */
  intervalMs?: number;
  /** Called with every answer, including the first and the last. */
  onUpdate?: (image: GatewayImage) => void;
  /** Stops waiting (the pull itself continues on the gateway). */
  signal?: AbortSignal;
}

/** Options of {@link GatewayClient.import}. */
export interface GatewayImportOptions {
  /** Absolute path of the squashfs file, readable by the gateway. */
  filepath: string;
  /** File format; only `squashfs`. */
  format?: 'squashfs';
  /** Besides the caller, uids allowed to use the image. */
  allowedUids?: readonly number[];
  /** Gids allowed to use the image. */
  allowedGids?: readonly number[];
}

/** States in which a pull or import is still being worked on (upstream's set plus HASHING, which it forgot). */
const WORKING_STATES = new Set<string>(['MISSING', ...IN_FLIGHT_STATUSES]);

/** Whether `status` means the gateway is still working on the image. */
export function isWorkingStatus(status: string): boolean {
  return WORKING_STATES.has(status);
}

interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  payload?: string;
  authenticated: boolean;
}

interface Attempt {
  url: string;
  error: string;
  untrusted?: boolean;
}

/** Raised inside one attempt when the gateway could not be used and the next URL should be tried. */
class Unreachable extends Error {
  /** The gateway answered, but its certificate was not trusted (wrong CA, host name, expired). */
  readonly untrusted: boolean;
  constructor(message: string, untrusted = false) {
    super(message);
    this.untrusted = untrusted;
  }
}

/** Node's and OpenSSL's codes for a certificate that failed verification. */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function isUntrusted(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  const causeCode = error instanceof Error ? (error.cause as { code?: unknown } | undefined)?.code : undefined;
  return UNTRUSTED_CODES.has(String(code)) || UNTRUSTED_CODES.has(String(causeCode));
}

const HOP_STATUSES = new Set([502, 503, 504]);

/**
 * Typed client of the image gateway REST API, with failover across gateway URLs.
 *
 * Every request goes to the URLs in a random order (shuffled once per request, so load spreads over instances) and
 * stops at the first gateway that answers. "Answers" means an HTTP response with a JSON body: an error envelope is
 * an answer too and becomes a {@link ShifterError} carrying the gateway's `code`, with no failover. A refused or
 * reset connection, a timeout, or a 502/503/504 without an envelope (a proxy in front of a dead gateway) moves on to
 * the next URL. Each attempt asks `authenticate` for a new credential, since munge credentials can be used once.
 *
 * Methods never retry the same URL and never cache. Requests go through `node:http`/`node:https` without keep-alive
 * (the cheapest path for a short-lived command), or through undici's fetch when a `dispatcher` is given. The client
 * keeps no sockets open between requests, so there is nothing to close.
 *
 * @example
 * ```ts
 * const client = new GatewayClient({
 *   urls: ['http://gw1:8000', 'http://gw2:8000'],
 *   system: 'cluster',
 *   authenticate: (payload) => mungeEncode(payload, { socketPath: '/run/munge/munge.socket.2' }),
 * });
 * const image = await client.lookup('docker', 'ubuntu:22.04');
 * console.log(image.id);
 * ```
 */
export class GatewayClient {
  readonly #urls: readonly string[];
  readonly #system: string;
  readonly #timeoutMs: number;
  readonly #authenticate: GatewayAuthenticator | undefined;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #ca: string | string[] | undefined;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  /**
   * @param options - gateway URLs, system and transport settings
   * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` when no URL is given, a URL is not http(s), the system
   *   name is empty or the timeout is not a positive number
   */
  constructor(options: GatewayClientOptions) {
    if (options.urls.length === 0) {
      throw new ConfigError('SHIFTER_CONFIG_INVALID', 'no image gateway configured: set imageGateway in udiRoot.conf', {
        details: { key: 'imageGateway' },
      });
    }
    this.#urls = options.urls.map((raw) => {
      let parsed: URL;
      try {
        parsed = new URL(raw);
      } catch {
        throw new ConfigError('SHIFTER_CONFIG_INVALID', `imageGateway: "${raw}" is not a URL`, {
          details: { key: 'imageGateway', url: raw },
        });
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        throw new ConfigError('SHIFTER_CONFIG_INVALID', `imageGateway: "${raw}" must be http:// or https://`, {
          details: { key: 'imageGateway', url: raw },
        });
      }
      return raw.replace(/\/+$/, '');
    });
    if (!options.system) {
      throw new ConfigError('SHIFTER_CONFIG_INVALID', 'no system name configured: set system in udiRoot.conf', {
        details: { key: 'system' },
      });
    }
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw new ConfigError('SHIFTER_CONFIG_INVALID', `gateway timeout must be a positive number, got ${timeoutMs}`, {
        details: { key: 'gatewayTimeout' },
      });
    }
    this.#system = options.system;
    this.#timeoutMs = timeoutMs;
    this.#authenticate = options.authenticate;
    this.#dispatcher = options.dispatcher;
    this.#ca = typeof options.ca === 'string' || options.ca === undefined ? options.ca : [...options.ca];
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleep;
  }

  /** The system this client asks about. */
  get system(): string {
    return this.#system;
  }

  /**
   * Resolve a tag to the READY image on this system (`GET /api/lookup/{system}/{type}/{tag}/`). The gateway resets
   * the image's expiry on every lookup.
   *
   * @param type - image type, e.g. `docker`
   * @param tag - image tag, e.g. `ubuntu:22.04`; URL-escaped here
   * @throws {@link NotFoundError} `SHIFTER_IMAGE_NOT_FOUND` when there is no READY image the caller may see
   * @throws {@link ShifterError} `SHIFTER_GATEWAY_UNAVAILABLE` when no gateway answers; `SHIFTER_GATEWAY_PROTOCOL` on
   *   an unexpected answer; any other code the gateway reports (`SHIFTER_AUTH_*`, `SHIFTER_SYSTEM_UNKNOWN`, …)
   */
  async lookup(type: string, tag: string): Promise<GatewayImage> {
    const body = await this.#request({
      method: 'GET',
      path: this.#imagePath('lookup', type, tag),
      authenticated: true,
    });
    return expectImage(body);
  }

  /**
   * Ask for a pull (`POST /api/pull/{system}/{type}/{tag}/`). Idempotent on the gateway: while a pull of the tag is
   * in flight the same record comes back, so polling is re-posting.
   *
   * @param type - image type, e.g. `docker`
   * @param tag - image tag; URL-escaped here
   * @param options - ACL additions and registry credentials
   * @returns the record of the current or newly started pull (often not READY yet)
   * @throws {@link ShifterError} as {@link GatewayClient.lookup}, plus the codes of a refused pull
   *   (`SHIFTER_REF_INVALID`, `SHIFTER_USAGE_INVALID_ARGUMENT`, `SHIFTER_JOB_CONFLICT`, …)
   */
  async pull(type: string, tag: string, options: GatewayPullOptions = {}): Promise<GatewayImage> {
    const body: Record<string, string> = {};
    if (options.allowedUids?.length) body.allowed_uids = joinIds(options.allowedUids, 'allowedUids');
    if (options.allowedGids?.length) body.allowed_gids = joinIds(options.allowedGids, 'allowedGids');
    const credentials =
      options.credentials && Object.keys(options.credentials).length > 0 ? options.credentials : undefined;
    const payload = credentials ? JSON.stringify({ authorized_locations: credentials }) : '';
    const answer = await this.#request({
      method: 'POST',
      path: this.#imagePath('pull', type, tag),
      body,
      payload,
      authenticated: true,
    });
    return expectImage(answer);
  }

  /**
   * Ask for a pull and poll (by re-posting, as upstream) until the image leaves the working states.
   *
   * @param type - image type
   * @param tag - image tag
   * @param options - as {@link GatewayClient.pull}
   * @param wait - poll interval, progress callback and cancellation
   * @returns the READY image
   * @throws {@link ShifterError} with the failed job's `code` (from the record, `SHIFTER_INTERNAL` when it has none)
   *   and its `status_message` when the pull ends in FAILURE; `SHIFTER_USAGE_INVALID_ARGUMENT` when `signal` aborts;
   *   the codes of {@link GatewayClient.pull}
   */
  async pullAndWait(
    type: string,
    tag: string,
    options: GatewayPullOptions = {},
    wait: GatewayWaitOptions = {},
  ): Promise<GatewayImage> {
    const intervalMs = wait.intervalMs ?? 500;
    for (;;) {
      if (wait.signal?.aborted) {
        throw new ShifterError(
          'SHIFTER_USAGE_INVALID_ARGUMENT',
          'stopped waiting; the pull goes on: check it with `shifterimg queue`',
          {
            details: { type, tag },
          },
        );
      }
      const image = await this.pull(type, tag, options);
      wait.onUpdate?.(image);
      if (!isWorkingStatus(image.status)) {
        if (image.status === 'READY') return image;
        throw failedImageError(image, type, tag);
      }
      await this.#sleep(intervalMs, wait.signal);
    }
  }

  /**
   * List the READY images of this system the caller may see (`GET /api/list/{system}/`).
   * @throws {@link ShifterError} `SHIFTER_GATEWAY_UNAVAILABLE`, `SHIFTER_GATEWAY_PROTOCOL` or the gateway's code
   */
  async list(): Promise<GatewayImage[]> {
    const body = await this.#request({
      method: 'GET',
      path: `/api/list/${encodeURIComponent(this.#system)}/`,
      authenticated: true,
    });
    const list = isObject(body) ? body.list : undefined;
    if (!Array.isArray(list)) throw protocolError('list answer has no "list" array');
    return list.map((item) => expectImage(item));
  }

  /**
   * Expire an image (admin; `GET /api/expire/{system}/{type}/{tag}/`). Removal happens asynchronously.
   * @param type - image type
   * @param tag - image tag
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN` when the caller is not an admin of the system
   * @throws {@link NotFoundError} `SHIFTER_IMAGE_NOT_FOUND` when no such image exists
   */
  async expire(type: string, tag: string): Promise<GatewayExpireResult> {
    const body = await this.#request({
      method: 'GET',
      path: this.#imagePath('expire', type, tag),
      authenticated: true,
    });
    if (!isObject(body) || typeof body.status !== 'boolean')
      throw protocolError('expire answer has no boolean "status"');
    return { status: body.status };
  }

  /**
   * Expire every image past its expiry time and purge stuck records (admin; `GET /api/autoexpire/{system}/`).
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN` when the caller is not an admin of the system
   */
  async autoexpire(): Promise<GatewayAutoexpireResult> {
    const body = await this.#request({
      method: 'GET',
      path: `/api/autoexpire/${encodeURIComponent(this.#system)}/`,
      authenticated: true,
    });
    if (!isObject(body) || !Array.isArray(body.status) || !body.status.every((id) => typeof id === 'string')) {
      throw protocolError('autoexpire answer has no "status" list of ids');
    }
    return { status: body.status as string[] };
  }

  /**
   * Import a squashfs file the gateway can read (`POST /api/doimport/{system}/{type}/{tag}/`).
   * @param type - image type, normally `custom`
   * @param tag - the tag to give the image
   * @param options - the file and ACLs
   * @throws {@link AuthError} `SHIFTER_IMPORT_NOT_ALLOWED` when the caller may not import on this system
   * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` when `filepath` is not absolute (checked here);
   *   `SHIFTER_IMPORT_INVALID` from the gateway
   */
  async import(type: string, tag: string, options: GatewayImportOptions): Promise<GatewayImage> {
    if (!options.filepath.startsWith('/')) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `the file to import must be an absolute path, got "${options.filepath}"`,
        {
          details: { filepath: options.filepath },
        },
      );
    }
    const body: Record<string, string> = { filepath: options.filepath, format: options.format ?? 'squashfs' };
    if (options.allowedUids?.length) body.allowed_uids = joinIds(options.allowedUids, 'allowedUids');
    if (options.allowedGids?.length) body.allowed_gids = joinIds(options.allowedGids, 'allowedGids');
    const answer = await this.#request({
      method: 'POST',
      path: this.#imagePath('doimport', type, tag),
      body,
      authenticated: true,
    });
    return expectImage(answer);
  }

  /**
   * Pulls and imports still being worked on for this system (`GET /api/queue/{system}/`).
   * @throws {@link ShifterError} `SHIFTER_GATEWAY_UNAVAILABLE`, `SHIFTER_GATEWAY_PROTOCOL` or the gateway's code
   */
  async queue(): Promise<GatewayQueueEntry[]> {
    const body = await this.#request({
      method: 'GET',
      path: `/api/queue/${encodeURIComponent(this.#system)}/`,
      authenticated: true,
    });
    const list = isObject(body) ? body.list : undefined;
    if (
      !Array.isArray(list) ||
      !list.every((entry) => isObject(entry) && typeof entry.status === 'string' && typeof entry.image === 'string')
    ) {
      throw protocolError('queue answer has no "list" of {status, image}');
    }
    return list as GatewayQueueEntry[];
  }

  /**
   * Health of the gateway that answers first (`GET /api/status`, no credential sent).
   * @throws {@link ShifterError} `SHIFTER_GATEWAY_UNAVAILABLE` when none answers
   */
  async status(): Promise<GatewayStatus> {
    const body = await this.#request({ method: 'GET', path: '/api/status', authenticated: false });
    if (!isObject(body) || body.status !== 'up') throw protocolError('status answer is not {"status":"up"}');
    return {
      status: 'up',
      version: typeof body.version === 'string' ? body.version : 'unknown',
      systems: Array.isArray(body.systems)
        ? body.systems.filter((name): name is string => typeof name === 'string')
        : [],
    };
  }

  /**
   * The newest lookup records of this system (admin; `GET /api/metrics/{system}/?limit=N`).
   * @param limit - how many rows (default 10, as upstream)
   * @throws {@link AuthError} `SHIFTER_AUTH_FORBIDDEN` when the caller is not an admin
   */
  async metrics(limit = 10): Promise<GatewayMetricsRow[]> {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `limit must be a positive integer, got ${limit}`);
    }
    const body = await this.#request({
      method: 'GET',
      path: `/api/metrics/${encodeURIComponent(this.#system)}/?limit=${limit}`,
      authenticated: true,
    });
    if (!Array.isArray(body)) throw protocolError('metrics answer is not a list');
    return body as GatewayMetricsRow[];
  }

  #imagePath(route: 'lookup' | 'pull' | 'doimport' | 'expire', type: string, tag: string): string {
    if (!type || !tag) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        'an image needs a type and a tag, e.g. docker:ubuntu:22.04',
        {
          details: { type, tag },
        },
      );
    }
    // Upstream clients curl_easy_escape() both segments, so ':' and '/' in tags arrive as %3A and %2F.
    return `/api/${route}/${encodeURIComponent(this.#system)}/${encodeURIComponent(type)}/${encodeURIComponent(tag)}/`;
  }

  #shuffledUrls(): string[] {
    const urls = [...this.#urls];
    for (let index = urls.length - 1; index > 0; index--) {
      const other = Math.floor(this.#random() * (index + 1));
      [urls[index], urls[other]] = [urls[other]!, urls[index]!];
    }
    return urls;
  }

  async #request(spec: RequestSpec): Promise<unknown> {
    const attempts: Attempt[] = [];
    for (const base of this.#shuffledUrls()) {
      try {
        return await this.#attempt(base, spec);
      } catch (error) {
        if (!(error instanceof Unreachable)) throw error;
        attempts.push({ url: base, error: error.message, ...(error.untrusted ? { untrusted: true } : {}) });
      }
    }
    if (attempts.some((attempt) => attempt.untrusted)) {
      // As the runtime: a gateway that answered with a certificate nobody trusts is a site configuration problem.
      throw new ConfigError(
        'SHIFTER_CONFIG_INVALID',
        `no image gateway answered, and some were not trusted (${attempts.map((attempt) => `${attempt.url}: ${attempt.error}`).join('; ')}); check gatewayCaPath and imageGateway in udiRoot.conf`,
        { details: { attempts, key: 'gatewayCaPath' } },
      );
    }
    throw new ShifterError(
      'SHIFTER_GATEWAY_UNAVAILABLE',
      `no image gateway answered (${attempts.map((attempt) => `${attempt.url}: ${attempt.error}`).join('; ')}); check imageGateway in udiRoot.conf or try again later`,
      { details: { attempts } },
    );
  }

  async #attempt(base: string, spec: RequestSpec): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (spec.authenticated && this.#authenticate) {
      headers.authentication = await this.#authenticate(spec.payload ?? '');
    }
    let bodyText: string | undefined;
    if (spec.method === 'POST') {
      headers['content-type'] = 'application/json';
      bodyText = JSON.stringify(spec.body ?? {});
    }
    const url = `${base}${spec.path}`;
    let response: { status: number; text: string };
    try {
      response = this.#dispatcher
        ? await fetchText(url, spec.method, headers, bodyText, this.#timeoutMs, this.#dispatcher)
        : await nodeRequestText(url, spec.method, headers, bodyText, this.#timeoutMs, this.#ca);
    } catch (error) {
      const untrusted = isUntrusted(error);
      const reason = describeNetworkError(error, this.#timeoutMs);
      throw new Unreachable(untrusted ? `certificate not trusted (${reason})` : reason, untrusted);
    }
    const text = response.text;
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.status >= 200 && response.status < 300) {
      if (parsed === undefined) throw protocolError(`gateway ${base} answered ${response.status} without a JSON body`);
      return parsed;
    }
    if (isEnvelope(parsed)) throw envelopeError(parsed, response.status, base);
    if (HOP_STATUSES.has(response.status)) throw new Unreachable(`HTTP ${response.status}`);
    throw statusError(response.status, base, parsed);
  }
}

function joinIds(ids: readonly number[], name: string): string {
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `${name}: ${id} is not a valid numeric id`, {
        details: { [name]: ids },
      });
    }
  }
  return ids.join(',');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function expectImage(value: unknown): GatewayImage {
  if (
    !isObject(value) ||
    typeof value.status !== 'string' ||
    typeof value.id !== 'string' ||
    !Array.isArray(value.tag)
  ) {
    throw protocolError('image answer lacks id, status or tag');
  }
  return value as unknown as GatewayImage;
}

function protocolError(message: string): ShifterError {
  return new ShifterError(
    'SHIFTER_GATEWAY_PROTOCOL',
    `${message}; is imageGateway pointing at a Shifter image gateway?`,
  );
}

function isEnvelope(value: unknown): value is ErrorResponse {
  return (
    isObject(value) &&
    typeof value.code === 'string' &&
    value.code.startsWith('SHIFTER_') &&
    typeof value.message === 'string'
  );
}

function knownCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOG, code);
}

/** Build the error a gateway envelope describes, using the error class of the code's area. */
function envelopeError(envelope: ErrorResponse, httpStatus: number, base: string): ShifterError {
  const rawCode: string = envelope.code;
  const code: ErrorCode = knownCode(rawCode) ? rawCode : 'SHIFTER_INTERNAL';
  const details: Record<string, unknown> = {
    ...(isObject(envelope.details) ? envelope.details : {}),
    httpStatus,
    gateway: base,
  };
  if (code !== rawCode) details.gatewayCode = rawCode;
  return makeError(code, envelope.message, details);
}

function makeError(code: ErrorCode, message: string, details: Record<string, unknown>): ShifterError {
  if (code.startsWith('SHIFTER_AUTH_') || code === 'SHIFTER_IMPORT_NOT_ALLOWED')
    return new AuthError(code, message, { details });
  if (code === 'SHIFTER_IMAGE_NOT_FOUND' || code === 'SHIFTER_SYSTEM_UNKNOWN')
    return new NotFoundError(code, message, { details });
  if (code.startsWith('SHIFTER_REGISTRY_')) return new RegistryError(code, message, { details });
  if (code.startsWith('SHIFTER_JOB_') || code === 'SHIFTER_STORE_UNAVAILABLE')
    return new StoreError(code, message, { details });
  if (code.startsWith('SHIFTER_CONFIG_')) return new ConfigError(code, message, { details });
  return new ShifterError(code, message, { details });
}

/** An error answer without an envelope: an upstream gateway (404 for everything) or something else on that port. */
function statusError(httpStatus: number, base: string, body: unknown): ShifterError {
  const details: Record<string, unknown> = { httpStatus, gateway: base };
  const upstreamMessage = isObject(body) && typeof body.error === 'string' ? body.error : undefined;
  if (upstreamMessage) details.gatewayError = upstreamMessage;
  if (httpStatus === 401)
    return new AuthError('SHIFTER_AUTH_INVALID', `gateway ${base} refused the credential`, { details });
  if (httpStatus === 403)
    return new AuthError('SHIFTER_AUTH_FORBIDDEN', `gateway ${base} refused the request`, { details });
  if (httpStatus === 404 && upstreamMessage !== undefined) {
    return new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `gateway ${base}: ${upstreamMessage}`, { details });
  }
  return new ShifterError(
    'SHIFTER_GATEWAY_PROTOCOL',
    `gateway ${base} answered HTTP ${httpStatus} without an error body`,
    { details },
  );
}

function failedImageError(image: GatewayImage, type: string, tag: string): ShifterError {
  const reported = typeof image.code === 'string' ? image.code : undefined;
  const code: ErrorCode = reported && knownCode(reported) ? reported : 'SHIFTER_INTERNAL';
  // The service writes "CODE: message" into status_message on FAILURE; strip the prefix we show anyway.
  const message = image.status_message.replace(/^SHIFTER_[A-Z0-9_]+:\s*/, '') || `pull of ${type}:${tag} failed`;
  const details: Record<string, unknown> = { type, tag, status: image.status };
  if (reported && reported !== code) details.gatewayCode = reported;
  return makeError(code, `${type}:${tag}: ${message}`, details);
}

function describeNetworkError(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  const direct = (error as { code?: unknown } | undefined)?.code;
  if (typeof direct === 'string') return direct;
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  // Already aborted (during the poll before): an abort listener would never fire.
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

interface RawResponse {
  status: number;
  text: string;
}

/** Request through undici (fetch) when the caller supplied a dispatcher: custom CA, proxy, MockAgent. */
async function fetchText(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
  dispatcher: Dispatcher,
): Promise<RawResponse> {
  const init: RequestInit = { method, headers, body, signal: AbortSignal.timeout(timeoutMs) };
  // Node's fetch takes an undici dispatcher; its bundled undici-types differ from the npm package's by version only.
  Object.assign(init, { dispatcher });
  const response = await fetch(url, init);
  return { status: response.status, text: await response.text() };
}

/** Largest answer read from a gateway; image lists of big sites are a few MiB. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * Request through node:http(s). This is the default path because it is what keeps a cold `shifterimg lookup` short:
 * fetch compiles undici's llhttp WebAssembly on first use, about 50 ms on a small machine.
 */
async function nodeRequestText(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
  ca: string | string[] | undefined,
): Promise<RawResponse> {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<RawResponse>((resolve, reject) => {
    const outgoing: Record<string, string> = { ...headers };
    if (body !== undefined) outgoing['content-length'] = String(Buffer.byteLength(body));
    const options = { method, headers: outgoing, agent: false as const, ...(ca !== undefined ? { ca } : {}) };
    const request = transport.request(target, options, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          request.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      response.on('error', fail);
    });
    const timer = setTimeout(
      () => request.destroy(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')),
      timeoutMs,
    );
    function fail(error: Error): void {
      clearTimeout(timer);
      reject(error);
    }
    request.on('error', fail);
    request.end(body);
  });
}
