/**
 * The registry client's transport: one logical GET with connection reuse per TLS/proxy setting, retries with
 * backoff on 429/5xx/connection failures (honouring `Retry-After`), redirects (never carrying the registry's
 * credentials to another origin, never downgrading https to plain http), and the registry's auth plugged in through
 * {@link RequestAuth}. It knows nothing of manifests, blobs or tokens.
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as timersSleep } from 'node:timers/promises';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { MAX_ERROR_BODY_BYTES, readAllLimited } from '../digest/index.js';
import { ConfigError, RegistryError, ShifterError } from '../errors/index.js';
import { registryNetworkError, registryResponseError, type RegistryRequestKind } from './registry-errors.js';
import { isLoopbackHost, proxyFor, type ProxyOptions, type RegistryEndpoint } from './registry-endpoint.js';
import {
  backoffDelay,
  isRetryableNetworkError,
  parseRetryAfter,
  RETRYABLE_STATUSES,
  type RetryPolicy,
} from './retry-policy.js';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';

/** A user name and password (or registry token) for one registry. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

/** Network timeouts of the registry client. */
export interface RegistryTimeouts {
  /** TCP + TLS connect. */
  connectMs: number;
  /** From request sent to response headers received. */
  headersMs: number;
  /** Longest silence between two body chunks (a stalled blob download is resumed after this). */
  bodyMs: number;
}

/** Default {@link RegistryTimeouts}. */
export const DEFAULT_REGISTRY_TIMEOUTS: Readonly<RegistryTimeouts> = Object.freeze({
  connectMs: 10_000,
  headersMs: 60_000,
  bodyMs: 60_000,
});

/** Default `User-Agent` of registry requests. */
export const DEFAULT_USER_AGENT = 'shifter/0.1 (@shifter/core)';

const MAX_REDIRECTS = 5;
const MAX_AUTH_ROUNDS = 2;

/** Waits `ms` milliseconds, rejecting early with the signal's reason when it aborts. @internal */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** The real {@link Sleep}: a timer. @internal */
export const realSleep: Sleep = async (ms, signal) => {
  await timersSleep(ms, undefined, signal ? { signal } : {});
};

/** The registry auth a request carries: asked for a header before sending, and told about a 401. @internal */
export interface RequestAuth {
  /** The `Authorization` header for a request to `endpoint` in `scope` (a token is refreshed first when expiring). */
  authorization(
    endpoint: RegistryEndpoint,
    scope: string,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined>;
  /** React to a 401 with these challenges; true when another attempt can succeed. */
  handleChallenge(
    endpoint: RegistryEndpoint,
    scope: string,
    challenges: AuthChallenge[],
    previousRounds: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean>;
}

/** One logical request. @internal */
export interface RequestSpec {
  endpoint: RegistryEndpoint;
  /** Token scope, e.g. `repository:test/busybox:pull`; undefined for requests that carry no registry auth. */
  scope: string | undefined;
  url: string;
  kind: RegistryRequestKind;
  what: string;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** The registry's auth; none for anonymous requests (token server, probe). */
  auth?: RequestAuth;
  /** Credentials sent as Basic regardless of challenges (token server requests). */
  basic?: RegistryCredentials;
  /** Statuses returned to the caller instead of mapped to errors. */
  acceptStatuses?: ReadonlySet<number>;
}

/** An answer of {@link RegistryTransport.send}. @internal */
export type ResponseData = Dispatcher.ResponseData;

/** Options of {@link RegistryTransport}. @internal */
export interface RegistryTransportOptions {
  /** undici dispatcher for every request (tests pass a `MockAgent`); proxies and CA bundles are then ignored. */
  dispatcher?: Dispatcher | undefined;
  timeouts: RegistryTimeouts;
  retry: RetryPolicy;
  proxy?: ProxyOptions | undefined;
  userAgent: string;
  /** How backoff waits (tests inject a recording one). */
  sleep?: Sleep | undefined;
  /** The clock an HTTP-date `Retry-After` is measured against (default `Date.now`). */
  now?: (() => number) | undefined;
}

/** `Basic …` header value. @internal */
export function basicHeader(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** The first value of a response header. @internal */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** An error answer's body, capped; undefined when it cannot be read. @internal */
export async function readErrorBody(body: Readable): Promise<Buffer | undefined> {
  try {
    return await readAllLimited(body, MAX_ERROR_BODY_BYTES, 'error body');
  } catch {
    body.destroy();
    return undefined;
  }
}

/** Sends registry requests; see the module comment. @internal */
export class RegistryTransport {
  readonly #dispatcher: Dispatcher | undefined;
  readonly #timeouts: RegistryTimeouts;
  readonly #retry: RetryPolicy;
  readonly #proxy: ProxyOptions | undefined;
  readonly #userAgent: string;
  readonly #agents = new Map<string, Dispatcher>();
  readonly #now: () => number;
  /** How backoff waits. */
  readonly sleep: Sleep;

  constructor(options: RegistryTransportOptions) {
    this.#dispatcher = options.dispatcher;
    this.#timeouts = options.timeouts;
    this.#retry = options.retry;
    this.#proxy = options.proxy;
    this.#userAgent = options.userAgent;
    this.sleep = options.sleep ?? realSleep;
    this.#now = options.now ?? Date.now;
  }

  /** The retry policy (blob resumption uses its `maxResumes` and backoff). */
  get retry(): RetryPolicy {
    return this.#retry;
  }

  #dispatcherFor(url: URL, endpoint: RegistryEndpoint): Dispatcher {
    if (this.#dispatcher) return this.#dispatcher;
    // The site CA bundle and the insecure flag apply to the registry's own host only, never to redirect targets.
    const own = url.host === new URL(endpoint.baseUrl).host;
    const caFile = own ? endpoint.caFile : undefined;
    const insecure = own && endpoint.insecure;
    const proxy = proxyFor(url, this.#proxy);
    const key = `${proxy ?? 'direct'}|${caFile ?? ''}|${insecure}`;
    let agent = this.#agents.get(key);
    if (agent) return agent;
    let ca: Buffer | undefined;
    if (caFile) {
      try {
        ca = readFileSync(caFile);
      } catch (error) {
        throw new ConfigError(
          'SHIFTER_CONFIG_INVALID',
          `cannot read the CA bundle ${caFile} of ${endpoint.host}: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
    const tls = {
      ...(ca ? { ca } : {}),
      ...(insecure ? { rejectUnauthorized: false } : {}),
      timeout: this.#timeouts.connectMs,
    };
    agent = proxy
      ? new ProxyAgent({ uri: proxy, requestTls: tls, proxyTls: { timeout: this.#timeouts.connectMs } })
      : new Agent({ connect: tls });
    this.#agents.set(key, agent);
    return agent;
  }

  /**
   * Send one logical request: auth, retries with backoff, redirects. Returns 2xx answers (and `acceptStatuses`);
   * maps everything else through {@link registryResponseError}.
   */
  async send(spec: RequestSpec): Promise<ResponseData> {
    let url = new URL(spec.url);
    let retries = 0;
    let authRounds = 0;
    let redirects = 0;
    for (;;) {
      spec.signal?.throwIfAborted();
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...spec.headers };
      // SECURITY: registry credentials only ever go to the registry's own origin; redirect targets get none.
      const toRegistry = url.origin === spec.endpoint.origin;
      if (spec.basic) headers.authorization = basicHeader(spec.basic);
      else if (spec.auth && toRegistry && spec.scope !== undefined) {
        const authorization = await spec.auth.authorization(spec.endpoint, spec.scope, spec.signal);
        if (authorization) headers.authorization = authorization;
      }
      let response: ResponseData;
      try {
        response = await request(url, {
          method: 'GET',
          headers,
          dispatcher: this.#dispatcherFor(url, spec.endpoint),
          headersTimeout: this.#timeouts.headersMs,
          bodyTimeout: this.#timeouts.bodyMs,
          ...(spec.signal ? { signal: spec.signal } : {}),
        });
      } catch (error) {
        if (spec.signal?.aborted) throw spec.signal.reason;
        if (ShifterError.isInstance(error)) throw error;
        if (isRetryableNetworkError(error) && retries + 1 < this.#retry.attempts) {
          retries += 1;
          await this.sleep(backoffDelay(this.#retry, retries), spec.signal);
          continue;
        }
        throw registryNetworkError(error, spec.what);
      }
      const status = response.statusCode;
      if ((status >= 200 && status < 300) || spec.acceptStatuses?.has(status)) return response;
      if ([301, 302, 303, 307, 308].includes(status)) {
        const location = headerValue(response.headers.location);
        await response.body.dump();
        if (!location || redirects >= MAX_REDIRECTS) {
          throw new RegistryError(
            'SHIFTER_REGISTRY_PROTOCOL',
            `${spec.what}: ${location ? 'too many redirects' : `redirect ${status} without Location`}`,
            { registryStatus: status },
          );
        }
        redirects += 1;
        const next = new URL(location, url);
        if (next.protocol === 'http:' && url.protocol === 'https:' && !isLoopbackHost(next.host)) {
          throw new RegistryError(
            'SHIFTER_REGISTRY_INSECURE_REFUSED',
            `${spec.what}: refusing a redirect from https to plain http (${next.host})`,
          );
        }
        url = next;
        continue;
      }
      const body = await readErrorBody(response.body);
      if (status === 401 && spec.auth && toRegistry && spec.scope !== undefined && authRounds < MAX_AUTH_ROUNDS) {
        const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
        if (await spec.auth.handleChallenge(spec.endpoint, spec.scope, challenges, authRounds, spec.signal)) {
          authRounds += 1;
          continue;
        }
      } else if (RETRYABLE_STATUSES.has(status) && retries + 1 < this.#retry.attempts) {
        const retryAfter = parseRetryAfter(response.headers['retry-after'], this.#now());
        if (retryAfter === undefined || retryAfter <= this.#retry.maxRetryAfterMs) {
          retries += 1;
          await this.sleep(retryAfter ?? backoffDelay(this.#retry, retries), spec.signal);
          continue;
        }
      }
      throw registryResponseError({
        status,
        headers: response.headers,
        ...(body ? { body } : {}),
        kind: spec.kind,
        what: spec.what,
      });
    }
  }

  /** Close every connection this transport opened. */
  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((agent) => agent.close().catch(() => undefined)));
  }
}
