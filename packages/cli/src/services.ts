import { ConfigError, GatewayClient, type GatewayAuthenticator } from '@shifter/core';
import { type CliConfig, loadCliConfig } from './cli-config.js';
import { CredentialStore } from './credential-store.js';
import { type CliEnvironment, readCliEnvironment } from './env.js';
import { signWithMunge } from './munge-sign.js';
import { unmungeDecoder } from './upstream-cred.js';

/** The gateway calls the commands make (a `GatewayClient`, or a stub in tests). */
export type GatewayApi = Pick<
  GatewayClient,
  'lookup' | 'pull' | 'pullAndWait' | 'list' | 'expire' | 'autoexpire' | 'import' | 'queue' | 'status'
>;

/** Everything a command needs from the outside world; tests replace parts with {@link useServices}. */
export interface CliServices {
  /** The documented environment variables. */
  environment(): CliEnvironment;
  /** Read `udiRoot.conf`. */
  loadConfig(file: string): Promise<CliConfig>;
  /** Build the gateway client for a configuration; `authenticate` replaces the default munge signer. */
  createClient(config: CliConfig, environment: CliEnvironment, authenticate?: GatewayAuthenticator): GatewayApi;
  /** The login store of the user. */
  credentialStore(environment: CliEnvironment): CredentialStore;
  /** Standard input (for `login --password-stdin`). */
  stdin(): NodeJS.ReadableStream;
  /** Make a munge credential carrying `payload`. */
  sign(payload: string, environment: CliEnvironment): Promise<string>;
}

const defaultServices: CliServices = {
  environment: () => readCliEnvironment(),
  loadConfig: loadCliConfig,
  createClient: (config, environment, authenticate) =>
    new GatewayClient({
      urls: config.imageGateway,
      system: config.system,
      timeoutMs: config.timeoutMs,
      ...(config.gatewayCa ? { ca: config.gatewayCa } : {}),
      authenticate: authenticate ?? ((payload) => current.sign(payload, environment)),
    }),
  credentialStore: (environment) => {
    if (!environment.home)
      throw new ConfigError('SHIFTER_CONFIG_INVALID', 'HOME is not set: the login store lives in $HOME/.udiRoot');
    return new CredentialStore(environment.home, { upstream: unmungeDecoder(environment.mungeSocket) });
  },
  stdin: () => process.stdin,
  sign: (payload, environment) => signWithMunge(payload, environment.mungeSocket),
};

let current: CliServices = defaultServices;

/** The services commands use now. */
export function services(): CliServices {
  return current;
}

/**
 * Replace some services (tests); returns a function that restores the previous ones.
 * @param overrides - the services to replace
 */
export function useServices(overrides: Partial<CliServices>): () => void {
  const previous = current;
  current = { ...current, ...overrides };
  return () => {
    current = previous;
  };
}
