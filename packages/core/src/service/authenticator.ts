/**
 * Request authentication: a munge credential from the `authentication` header becomes a {@link Caller}.
 *
 * @packageDocumentation
 */
import type { MungeVerifier } from '../auth/index.js';
import type { ShifterConfig } from '../config/index.js';
import { AuthError, NotFoundError } from '../errors/index.js';
import type { Caller } from './caller.js';
import type { GroupResolver } from './group-resolver.js';

/** Turns a request's credential into a caller for one system. */
export interface Authenticator {
  /**
   * Verify `credential` against `system`'s munged socket and resolve the caller's name and groups.
   * @param system - configured system name (its munge key is the one that must have signed the credential)
   * @param credential - the `authentication` header value
   * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`; {@link AuthError} `SHIFTER_AUTH_REQUIRED`,
   *   `SHIFTER_AUTH_INVALID`, `SHIFTER_AUTH_EXPIRED`, `SHIFTER_AUTH_REPLAYED`, `SHIFTER_AUTH_UNAVAILABLE`
   */
  authenticate(system: string, credential: string | undefined): Promise<Caller>;
}

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** The configuration (systems and their munge sockets). */
  readonly config: ShifterConfig;
  /** Makes a verifier for a munged socket; called once per distinct socket. */
  readonly verifierFor: (socketPath: string) => MungeVerifier;
  /** NSS lookups for names and groups. */
  readonly groups: GroupResolver;
}

/** Largest credential accepted; munge credentials of a few registry logins are a few KiB. */
export const MAX_CREDENTIAL_BYTES = 64 * 1024;

/**
 * Create the authenticator the gateway calls on every request but status, OpenAPI and /metrics.
 * @param options - config, verifier factory, NSS resolver
 */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const verifiers = new Map<string, MungeVerifier>();
  const verifierOf = (socketPath: string): MungeVerifier => {
    let verifier = verifiers.get(socketPath);
    if (!verifier) {
      verifier = options.verifierFor(socketPath);
      verifiers.set(socketPath, verifier);
    }
    return verifier;
  };
  return {
    async authenticate(system, credential) {
      const systemConfig = Object.hasOwn(options.config.systems, system) ? options.config.systems[system] : undefined;
      if (!systemConfig)
        throw new NotFoundError(
          'SHIFTER_SYSTEM_UNKNOWN',
          `system ${JSON.stringify(system.slice(0, 128))} is not configured`,
        );
      const text = credential?.trim() ?? '';
      if (text === '')
        throw new AuthError('SHIFTER_AUTH_REQUIRED', 'the authentication header with a munge credential is required');
      if (text.length > MAX_CREDENTIAL_BYTES) throw new AuthError('SHIFTER_AUTH_INVALID', 'the credential is too long');
      const identity = await verifierOf(systemConfig.mungeSocketPath).verify(text);
      const [user, groups] = await Promise.all([
        options.groups.user(identity.uid),
        options.groups.groupsOf(identity.uid),
      ]);
      return {
        uid: identity.uid,
        gid: identity.gid,
        user: user?.name ?? String(identity.uid),
        groups: [...new Set([identity.gid, ...groups])].sort((a, b) => a - b),
        authorizedLocations: identity.authorizedLocations,
      };
    },
  };
}
