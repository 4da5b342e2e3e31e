/**
 * The registry client's authentication: Basic, and the Docker token flow (challenge parsed fully, token cached per
 * origin and scope, refreshed a little before it expires and once more on a 401 mid-pull, anonymous first and
 * credentials when the registry asks for them, concurrent requests for one token shared). Time comes from an
 * injected clock, so expiry is testable without waiting. Token requests go through the {@link RegistryTransport}.
 */
import { readAllLimited } from '../digest/index.js';
import { RegistryError } from '../errors/index.js';
import { registryResponseError } from './registry-errors.js';
import { isLoopbackHost, type RegistryEndpoint } from './registry-endpoint.js';
import {
  basicHeader,
  readErrorBody,
  type RegistryCredentials,
  type RegistryTransport,
  type RequestAuth,
} from './registry-transport.js';
import type { AuthChallenge } from './www-authenticate.js';

/**
 * Finds credentials for a registry. Called only when the registry asks for them, with the reference's
 * registry host (`docker.io`, `127.0.0.1:5001`) and the configured location name if one matched.
 */
export type CredentialsLookup = (
  registryHost: string,
  location?: string,
) => RegistryCredentials | undefined | Promise<RegistryCredentials | undefined>;

/** Lifetime assumed for a token whose answer has no `expires_in` (Docker token spec). */
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 60;

interface AuthState {
  scheme: 'bearer' | 'basic';
  token?: string;
  expiresAt?: number;
  lifetimeMs?: number;
  withCredentials: boolean;
  challenge?: AuthChallenge;
}

/** Options of {@link RegistryAuth}. @internal */
export interface RegistryAuthOptions {
  /** Sends token requests. */
  transport: RegistryTransport;
  /** Credentials lookup; anonymous access only when omitted. */
  credentials?: CredentialsLookup | undefined;
  /** Largest token answer read. */
  maxTokenBytes: number;
  /** The clock token expiry is measured with (milliseconds since the epoch; default `Date.now`). */
  now?: (() => number) | undefined;
}

/** Refresh this long before a token's expiry, so a request is not sent with a token that dies in flight. */
const refreshMargin = (state: AuthState) => Math.min(5_000, (state.lifetimeMs ?? 60_000) / 4);

/** Authentication state of one {@link RegistryClient}; see the module comment. @internal */
export class RegistryAuth implements RequestAuth {
  readonly #transport: RegistryTransport;
  readonly #credentials: CredentialsLookup | undefined;
  readonly #maxTokenBytes: number;
  readonly #now: () => number;
  readonly #auth = new Map<string, AuthState>();
  readonly #challenges = new Map<string, AuthChallenge>();
  readonly #tokenRequests = new Map<string, Promise<AuthState>>();
  #tokensIssued = 0;

  constructor(options: RegistryAuthOptions) {
    this.#transport = options.transport;
    this.#credentials = options.credentials;
    this.#maxTokenBytes = options.maxTokenBytes;
    this.#now = options.now ?? Date.now;
  }

  /** Number of tokens obtained from token servers. */
  get tokensIssued(): number {
    return this.#tokensIssued;
  }

  /** Remember how a registry hands out tokens (a probe's challenge), so the next request skips the 401 round trip. */
  rememberChallenge(origin: string, challenge: AuthChallenge): void {
    this.#challenges.set(origin, challenge);
  }

  /** Whether the requests of `scope` on `endpoint` carry credentials (the gateway marks such images private). */
  usedCredentials(endpoint: RegistryEndpoint, scope: string): boolean {
    return this.#auth.get(this.#authKey(endpoint, scope))?.withCredentials ?? false;
  }

  #authKey(endpoint: RegistryEndpoint, scope: string): string {
    return `${endpoint.origin} ${scope}`;
  }

  /** The credentials this client sends to a registry, if any (blob proofs are kept per login). */
  lookupCredentials(endpoint: RegistryEndpoint): Promise<RegistryCredentials | undefined> {
    return this.#lookupCredentials(endpoint);
  }

  async #lookupCredentials(endpoint: RegistryEndpoint): Promise<RegistryCredentials | undefined> {
    if (!this.#credentials) return undefined;
    return (await this.#credentials(endpoint.host, endpoint.location)) ?? undefined;
  }

  /** The Authorization header for a request, refreshing an expiring token first. */
  async authorization(
    endpoint: RegistryEndpoint,
    scope: string,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const key = this.#authKey(endpoint, scope);
    let state = this.#auth.get(key);
    if (state === undefined && endpoint.authMethod === 'basic') {
      const credentials = await this.#lookupCredentials(endpoint);
      if (credentials) {
        state = { scheme: 'basic', withCredentials: true };
        this.#auth.set(key, state);
      }
    }
    if (state === undefined) {
      // Another repository on this registry already told us how to get tokens: skip the 401 round trip.
      const known = this.#challenges.get(endpoint.origin);
      if (known && endpoint.authMethod !== 'basic')
        state = await this.#obtainToken(endpoint, scope, known, false, signal);
    }
    if (state === undefined) return undefined;
    if (state.scheme === 'basic') {
      const credentials = await this.#lookupCredentials(endpoint);
      return credentials ? basicHeader(credentials) : undefined;
    }
    if (state.expiresAt !== undefined && state.challenge !== undefined) {
      if (this.#now() >= state.expiresAt - refreshMargin(state))
        state = await this.#obtainToken(endpoint, scope, state.challenge, state.withCredentials, signal);
    }
    return state.token ? `Bearer ${state.token}` : undefined;
  }

  /**
   * React to a 401: decide whether another attempt with (new or better) credentials can succeed.
   * @returns true to retry the request
   */
  async handleChallenge(
    endpoint: RegistryEndpoint,
    scope: string,
    challenges: AuthChallenge[],
    previousRounds: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const key = this.#authKey(endpoint, scope);
    const state = this.#auth.get(key);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    const method = endpoint.authMethod ?? (bearer ? 'token' : basic ? 'basic' : undefined);
    if (method === undefined) return false;
    const credentials = await this.#lookupCredentials(endpoint);
    if (method === 'basic') {
      if (!credentials || state?.scheme === 'basic') return false;
      this.#auth.set(key, { scheme: 'basic', withCredentials: true });
      return true;
    }
    const challenge = bearer ?? state?.challenge ?? this.#challenges.get(endpoint.origin);
    if (!challenge?.params.realm) return false;
    this.#challenges.set(endpoint.origin, challenge);
    let withCredentials = false;
    if (state?.token !== undefined) {
      // We sent a token and it was refused. insufficient_scope on an anonymous token means the repository needs
      // credentials; anything else (invalid_token, or no reason given) is treated as an expired or revoked token
      // and refreshed in the same mode — unless this request already refreshed once, then credentials are tried.
      const lacksAccess = challenge.params.error === 'insufficient_scope' || previousRounds > 0;
      if (state.withCredentials) withCredentials = true;
      else if (lacksAccess) {
        if (credentials === undefined) return false;
        withCredentials = true;
      }
    }
    await this.#obtainToken(endpoint, scope, challenge, withCredentials, signal, true);
    return true;
  }

  /** Get a token for a scope, deduplicating concurrent requests for the same scope and mode. */
  async #obtainToken(
    endpoint: RegistryEndpoint,
    scope: string,
    challenge: AuthChallenge,
    withCredentials: boolean,
    signal: AbortSignal | undefined,
    force = false,
  ): Promise<AuthState> {
    const key = this.#authKey(endpoint, scope);
    const flightKey = `${key} ${withCredentials}`;
    const running = this.#tokenRequests.get(flightKey);
    if (running) return running;
    const current = this.#auth.get(key);
    if (
      !force &&
      current?.token &&
      current.withCredentials === withCredentials &&
      current.expiresAt !== undefined &&
      this.#now() < current.expiresAt - refreshMargin(current)
    ) {
      return current;
    }
    const attempt = this.#requestToken(endpoint, scope, challenge, withCredentials, signal).then((state) => {
      this.#auth.set(key, state);
      return state;
    });
    this.#tokenRequests.set(flightKey, attempt);
    try {
      return await attempt;
    } finally {
      this.#tokenRequests.delete(flightKey);
    }
  }

  async #requestToken(
    endpoint: RegistryEndpoint,
    scope: string,
    challenge: AuthChallenge,
    withCredentials: boolean,
    signal: AbortSignal | undefined,
  ): Promise<AuthState> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm as string);
    } catch {
      throw new RegistryError(
        'SHIFTER_REGISTRY_PROTOCOL',
        `${endpoint.host} sent an unusable token realm ${JSON.stringify(challenge.params.realm)}`,
      );
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${endpoint.host} sent a token realm that is not http(s)`);
    }
    // SECURITY: credentials go to the realm; plain HTTP there is held to the same policy as the registry itself.
    if (realm.protocol === 'http:' && !endpoint.insecure && !isLoopbackHost(realm.host)) {
      throw new RegistryError(
        'SHIFTER_REGISTRY_INSECURE_REFUSED',
        `refusing plain-HTTP token server ${realm.host} for ${endpoint.host}`,
      );
    }
    if (challenge.params.service !== undefined) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? scope);
    const credentials = withCredentials ? await this.#lookupCredentials(endpoint) : undefined;
    if (withCredentials && !credentials) {
      throw new RegistryError(
        'SHIFTER_REGISTRY_AUTH_FAILED',
        `${endpoint.host} requires credentials for ${scope} and none are configured`,
        { registryStatus: 401 },
      );
    }
    const what = `token for ${scope} from ${realm.origin}${realm.pathname}`;
    const response = await this.#transport.send({
      endpoint,
      scope: undefined,
      url: realm.href,
      kind: 'token',
      what,
      ...(credentials ? { basic: credentials } : {}),
      signal,
      headers: { accept: 'application/json' },
      acceptStatuses: new Set([401, 403]),
    });
    if (response.statusCode === 401 || response.statusCode === 403) {
      const body = await readErrorBody(response.body);
      if (!withCredentials && (await this.#lookupCredentials(endpoint)) !== undefined) {
        return this.#requestToken(endpoint, scope, challenge, true, signal);
      }
      throw registryResponseError({
        status: response.statusCode,
        headers: response.headers,
        ...(body ? { body } : {}),
        kind: 'token',
        what,
      });
    }
    const bytes = await readAllLimited(response.body, this.#maxTokenBytes, what);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${what}: answer is not JSON`, { cause: error });
    }
    const token = typeof json.token === 'string' && json.token.length > 0 ? json.token : json.access_token;
    if (typeof token !== 'string' || token.length === 0)
      throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${what}: answer has no token`);
    const expiresIn =
      typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_LIFETIME_SECONDS;
    this.#tokensIssued += 1;
    return {
      scheme: 'bearer',
      token,
      lifetimeMs: expiresIn * 1000,
      expiresAt: this.#now() + expiresIn * 1000,
      withCredentials,
      challenge,
    };
  }
}
