/**
 * In-process munge: the N-API binding of libmunge (`native/munge.c`), loaded with `createRequire`, and the
 * verifier the gateway uses on every request's `authentication` header.
 *
 * @packageDocumentation
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { AuthError, ShifterError } from '../errors/index.js';
import type {
  AuthorizedLocations,
  MungeCredential,
  MungeEncodeOptions,
  MungeIdentity,
  MungeOptions,
  MungeVerifier,
  RegistryLogin,
} from './munge.js';

interface NativeDecoded {
  uid: number;
  gid: number;
  payload: Buffer;
  encodeTime: number;
  decodeTime: number;
}

interface NativeMunge {
  encode(payload: Buffer, socketPath: string, ttl: number): Promise<string>;
  decode(credential: string, socketPath: string): Promise<NativeDecoded>;
}

/** libmunge's `munge_err_t` values the gateway distinguishes (munge.h). */
export const MungeErrorCode = {
  SNAFU: 1,
  NO_MEMORY: 5,
  SOCKET: 6,
  TIMEOUT: 7,
  CRED_EXPIRED: 15,
  CRED_REWOUND: 16,
  CRED_REPLAYED: 17,
} as const;

/** Longest credential accepted; real ones are a few hundred bytes (more with a payload). */
export const MAX_MUNGE_CREDENTIAL_BYTES = 64 * 1024;

// The addon sits in native/build/Release both next to src/ (development, tests) and next to dist/ (installed).
const ADDON_CANDIDATES = [
  '../../native/build/Release/shifter_munge.node',
  '../native/build/Release/shifter_munge.node',
];

let loaded: NativeMunge | undefined;

/**
 * Load the addon once.
 * @throws {@link AuthError} `SHIFTER_AUTH_UNAVAILABLE` (not retryable) when it was not built (`npm run build:native`).
 */
function native(): NativeMunge {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const candidate of ADDON_CANDIDATES) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    tried.push(path);
    if (!existsSync(path)) continue;
    try {
      loaded = require(path) as NativeMunge;
      return loaded;
    } catch (error) {
      throw new AuthError(
        'SHIFTER_AUTH_UNAVAILABLE',
        `the munge addon at ${path} does not load: ${(error as Error).message}`,
        {
          cause: error,
          retryable: false,
        },
      );
    }
  }
  throw new AuthError(
    'SHIFTER_AUTH_UNAVAILABLE',
    'the munge addon is not built: run `npm run build:native -w @shifter/core` (needs libmunge-dev)',
    { retryable: false, details: { tried } },
  );
}

/** Map an addon rejection to the catalogue. */
function mapMungeError(error: unknown, socketPath: string): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  const code = (error as { mungeCode?: number }).mungeCode;
  const text = (error as Error)?.message ?? String(error);
  const details = { mungeCode: code ?? null, socketPath };
  switch (code) {
    case MungeErrorCode.CRED_EXPIRED:
      return new AuthError('SHIFTER_AUTH_EXPIRED', `munge: ${text}`, { details, cause: error });
    case MungeErrorCode.CRED_REPLAYED:
      return new AuthError('SHIFTER_AUTH_REPLAYED', `munge: ${text}`, { details, cause: error });
    case MungeErrorCode.SOCKET:
    case MungeErrorCode.TIMEOUT:
    case MungeErrorCode.NO_MEMORY:
    case MungeErrorCode.SNAFU:
      return new AuthError('SHIFTER_AUTH_UNAVAILABLE', `munged at ${socketPath}: ${text}`, { details, cause: error });
    case undefined:
      // Argument errors thrown by the addon itself (over-long input and the like).
      return new AuthError('SHIFTER_AUTH_INVALID', `munge: ${text}`, { details, cause: error });
    default:
      // Bad format, MAC, cipher, realm, rewound clock, unauthorised: all mean "do not trust this credential".
      return new AuthError('SHIFTER_AUTH_INVALID', `munge: ${text}`, { details, cause: error });
  }
}

/**
 * Create a credential with munged at `socketPath` (as this process's uid/gid) carrying `payload`.
 * @param payload - bytes or UTF-8 text to carry (e.g. `JSON.stringify({ authorized_locations: … })`)
 * @throws {@link AuthError} `SHIFTER_AUTH_UNAVAILABLE` when munged cannot be reached or the addon is missing.
 */
export async function mungeEncode(payload: string | Uint8Array, options: MungeEncodeOptions): Promise<string> {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const ttl = options.ttl ?? 0;
  if (!Number.isInteger(ttl) || ttl < 0)
    throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'ttl must be a non-negative integer');
  try {
    return await native().encode(bytes, options.socketPath, ttl);
  } catch (error) {
    throw mapMungeError(error, options.socketPath);
  }
}

/**
 * Decode and verify a credential with munged at `socketPath`. Runs on libuv's thread pool.
 * @throws {@link AuthError} `SHIFTER_AUTH_EXPIRED`, `SHIFTER_AUTH_REPLAYED`, `SHIFTER_AUTH_INVALID`,
 *   `SHIFTER_AUTH_UNAVAILABLE` (see {@link MungeVerifier.verify}).
 */
export async function mungeDecode(credential: string, options: MungeOptions): Promise<MungeCredential> {
  if (Buffer.byteLength(credential) > MAX_MUNGE_CREDENTIAL_BYTES) {
    throw new AuthError('SHIFTER_AUTH_INVALID', 'the credential is longer than any munge credential');
  }
  let decoded: NativeDecoded;
  try {
    decoded = await native().decode(credential, options.socketPath);
  } catch (error) {
    throw mapMungeError(error, options.socketPath);
  }
  return {
    uid: decoded.uid,
    gid: decoded.gid,
    payload: decoded.payload.toString('utf8'),
    encodeTime: decoded.encodeTime,
    decodeTime: decoded.decodeTime,
  };
}

/**
 * The `authorized_locations` of a credential payload (`{"authorized_locations": {"default": "user:pass", …}}`), or
 * null when the payload is not that JSON. Non-string values are dropped. Never throws.
 */
export function parseAuthorizedLocations(payload: string): AuthorizedLocations | null {
  if (!payload.trim().startsWith('{')) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return null;
  }
  const locations = (parsed as { authorized_locations?: unknown } | null)?.authorized_locations;
  if (typeof locations !== 'object' || locations === null || Array.isArray(locations)) return null;
  const result: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(locations as Record<string, unknown>)) {
    if (typeof value === 'string') result[name] = value;
  }
  return result;
}

/**
 * Registry login for `location` from a caller's authorized locations: the entry for the location, else `default`;
 * `user:password` split at the first `:` (as upstream). Null when there is none or it has no `:`.
 */
export function registryLoginFor(locations: AuthorizedLocations | null, location: string): RegistryLogin | null {
  if (!locations) return null;
  const value = Object.hasOwn(locations, location) ? locations[location] : locations.default;
  if (typeof value !== 'string') return null;
  const colon = value.indexOf(':');
  if (colon <= 0) return null;
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/**
 * A {@link MungeVerifier} for one munged socket (one system: munge keys are per system).
 * @throws {@link AuthError} `SHIFTER_AUTH_UNAVAILABLE` (not retryable) when the addon is not built — checked here,
 *   at start-up, rather than on the first request.
 * @example
 * ```ts
 * const verifier = createMungeVerifier({ socketPath: '/run/munge/munge.socket.2' });
 * const caller = await verifier.verify(request.headers.authentication);
 * ```
 */
export function createMungeVerifier(options: MungeOptions): MungeVerifier {
  if (typeof options.socketPath !== 'string' || options.socketPath === '') {
    throw new ShifterError('SHIFTER_CONFIG_INVALID', 'a munge socket path is required');
  }
  native();
  const socketPath = options.socketPath;
  return {
    socketPath,
    async verify(credential: string): Promise<MungeIdentity> {
      const trimmed = typeof credential === 'string' ? credential.trim() : '';
      if (trimmed === '') throw new AuthError('SHIFTER_AUTH_REQUIRED', 'the authentication header is missing or empty');
      const decoded = await mungeDecode(trimmed, { socketPath });
      return { ...decoded, authorizedLocations: parseAuthorizedLocations(decoded.payload) };
    },
  };
}
