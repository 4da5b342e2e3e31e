import { ConfigError, loadUdiRootConf, readTrustAnchors } from '@shifter/core';
import type { CliEnvironment } from './env.js';

/** Where `udiRoot.conf` lives when neither `--config` nor `SHIFTER_CONFIG` says otherwise (the runtime's default). */
export const DEFAULT_UDIROOT_CONF = '/etc/shifter/udiRoot.conf';

/** The part of `udiRoot.conf` the client needs. */
export interface CliConfig {
  /** The file the settings came from. */
  file: string;
  /** Gateway base URLs (tried in random order). */
  imageGateway: string[];
  /** System name sent to the gateway. */
  system: string;
  /** Image type for bare tags. */
  defaultImageType: string;
  /** Per-attempt timeout in milliseconds. */
  timeoutMs: number;
  /** Trust anchors read from `gatewayCaPath` (PEM texts), when it is set and some gateway URL is `https://`. */
  gatewayCa?: string[];
}

/**
 * Resolve which file to read: `--config`, then `SHIFTER_CONFIG`, then {@link DEFAULT_UDIROOT_CONF}.
 * @param flag - value of `--config`
 * @param environment - the documented environment
 */
export function resolveConfigPath(flag: string | undefined, environment: CliEnvironment): string {
  return flag ?? environment.config ?? DEFAULT_UDIROOT_CONF;
}

/**
 * Load the client settings from `udiRoot.conf`.
 * @param file - path from {@link resolveConfigPath}
 * @throws ConfigError `SHIFTER_CONFIG_NOT_FOUND` when unreadable; `SHIFTER_CONFIG_INVALID` when malformed, when
 *   `imageGateway` or `system` is missing, or when `gatewayCaPath` (read only if a gateway URL is `https://`) is
 *   unreadable or holds no certificate
 */
export async function loadCliConfig(file: string): Promise<CliConfig> {
  const conf = await loadUdiRootConf(file);
  if (conf.imageGateway.length === 0) {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `${file}: imageGateway is not set: add "imageGateway=http://HOST:PORT"`,
      {
        details: { file, key: 'imageGateway' },
      },
    );
  }
  if (!conf.system) {
    throw new ConfigError('SHIFTER_CONFIG_INVALID', `${file}: system is not set: add "system=NAME"`, {
      details: { file, key: 'system' },
    });
  }
  // As the runtime: the CA path is read only when a gateway speaks TLS, and then replaces the default store.
  const needsCa = conf.gatewayCaPath !== null && conf.imageGateway.some((url) => url.startsWith('https://'));
  const gatewayCa = needsCa ? await readTrustAnchors(conf.gatewayCaPath!) : undefined;
  return {
    file,
    ...(gatewayCa ? { gatewayCa } : {}),
    imageGateway: conf.imageGateway,
    system: conf.system,
    defaultImageType: conf.defaultImageType ?? 'docker',
    // gatewayTimeout is in seconds (upstream's curl timeout); 0 or unset means the default of one minute.
    timeoutMs: conf.gatewayTimeout ? conf.gatewayTimeout * 1000 : 60_000,
  };
}
