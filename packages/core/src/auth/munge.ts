/**
 * Munge types: what a decoded credential tells the gateway, and the verifier interface the gateway's auth plugin
 * calls. The implementation (`createMungeVerifier`, `mungeEncode`, `mungeDecode`) binds libmunge in-process through
 * a small N-API addon (`packages/core/native/munge.c`) — no process per request.
 *
 * @packageDocumentation
 */
// Imported for TSDoc links only.
import type { AuthError } from '../errors/index.js';

/** A decoded, verified munge credential. */
export interface MungeCredential {
  /** uid of the process that encoded the credential (as seen by the encoding host's munged). */
  readonly uid: number;
  /** gid of that process. */
  readonly gid: number;
  /** The payload, decoded as UTF-8 ('' when none). */
  readonly payload: string;
  /** Epoch seconds the credential was encoded. */
  readonly encodeTime: number;
  /** Epoch seconds it was decoded. */
  readonly decodeTime: number;
}

/** Registry credentials a caller sent in the payload, by location name (`default` for any other location). */
export type AuthorizedLocations = Readonly<Record<string, string>>;

/** A verified caller: the credential plus the parsed payload. */
export interface MungeIdentity extends MungeCredential {
  /**
   * `authorized_locations` of the payload (`{"authorized_locations": {"default": "user:pass", "<loc>": …}}`), or
   * null when the payload has none (or is not that JSON).
   */
  readonly authorizedLocations: AuthorizedLocations | null;
}

/** Registry user name and password for one location. */
export interface RegistryLogin {
  /** User name (before the first `:`). */
  readonly username: string;
  /** Password (everything after the first `:`). */
  readonly password: string;
}

/** Options of {@link MungeVerifier} and the encode/decode functions. */
export interface MungeOptions {
  /** Path of munged's socket (a system's `mungeSocketPath`). */
  readonly socketPath: string;
}

/** Options of `mungeEncode`. */
export interface MungeEncodeOptions extends MungeOptions {
  /** Lifetime in seconds (munge `-t`); default munged's (300). */
  readonly ttl?: number;
}

/**
 * Verifies munge credentials against one munged socket. Decoding runs on libuv's thread pool, so it does not block
 * the event loop; many may be in flight at once.
 */
export interface MungeVerifier {
  /** The munged socket this verifier talks to. */
  readonly socketPath: string;
  /**
   * Decode and verify `credential` (the `authentication` header's value).
   * @throws {@link AuthError} `SHIFTER_AUTH_REQUIRED` for an empty credential; `SHIFTER_AUTH_EXPIRED` when it has
   *   expired; `SHIFTER_AUTH_REPLAYED` when it was already decoded; `SHIFTER_AUTH_INVALID` when it is malformed,
   *   forged or made with another key; `SHIFTER_AUTH_UNAVAILABLE` (retryable) when munged cannot be reached.
   */
  verify(credential: string): Promise<MungeIdentity>;
}
