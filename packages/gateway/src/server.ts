/**
 * Running the gateway: `serve` (REST service, plus the job workers on the embedded deployment) and `worker` (jobs of
 * one system, possibly on another host).
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import {
  checkDeployment,
  createShifter,
  type Shifter,
  type ShifterComponents,
  type ShifterConfig,
} from '@shifter/core';
import type { FastifyInstance } from 'fastify';
import { destination, pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import { fdBudgetWarning } from './plugins/connection-guard.js';

/** Version of this package (reported by /api/status). */
export const GATEWAY_VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
      .version;
  } catch {
    return '0.0.0';
  }
})();

/** A running serve process. */
export interface RunningGateway {
  readonly app: FastifyInstance;
  readonly shifter: Shifter;
  /** `http://host:port` actually bound. */
  readonly url: string;
  /** Stop listening, stop workers, close the store. */
  close(): Promise<void>;
}

/** Options of {@link startGateway}. */
export interface StartGatewayOptions {
  /** Run job workers in this process even on the distributed deployment (they always run on the embedded one). */
  readonly withWorkers?: boolean;
  /** Component replacements (tests, embedders). */
  readonly components?: ShifterComponents;
  /** Logger; default pino at the configured level on stderr. */
  readonly logger?: Logger;
}

/** The process logger for a config. */
export function createLogger(config: ShifterConfig): Logger {
  return pino({ level: config.logLevel, base: { service: 'shifter-gateway' } }, destination(2));
}

/**
 * Start `serve`: check the deployment, wire the components, start workers when the queue is in-process (or asked
 * to), and listen.
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` for a deployment that cannot run (several instances on the
 *   embedded store); store and bind errors
 */
export async function startGateway(config: ShifterConfig, options: StartGatewayOptions = {}): Promise<RunningGateway> {
  checkDeployment(config, 'serve');
  const logger = options.logger ?? createLogger(config);
  const shifter = await createShifter(config, { logger, ...options.components });
  try {
    if (config.queue.kind === 'in-process' || options.withWorkers) await shifter.service.startWorkers();
    const app = await buildApp({
      config,
      service: shifter.service,
      authenticator: shifter.authenticator,
      version: GATEWAY_VERSION,
      logger,
    });
    const fdWarning = fdBudgetWarning(config.gateway);
    if (fdWarning)
      logger.warn({ maxConnections: config.gateway.maxConnections, fdReserve: config.gateway.fdReserve }, fdWarning);
    const url = await app.listen({ host: config.gateway.host, port: config.gateway.port });
    logger.info(
      { url, systems: shifter.service.systems(), metadata: config.metadata.kind, queue: config.queue.kind },
      'gateway listening',
    );
    let closing: Promise<void> | null = null;
    return {
      app,
      shifter,
      url,
      close: () =>
        (closing ??= (async () => {
          await app.close();
          await shifter.close({ timeoutMs: 10_000 });
        })()),
    };
  } catch (error) {
    await shifter.close({ timeoutMs: 1000 });
    throw error;
  }
}

/**
 * Start `worker` for one system: the jobs of that system only, against the shared MongoDB store and Redis queue.
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` unless the config uses mongo + redis and names the system
 */
export async function startWorker(
  config: ShifterConfig,
  system: string,
  options: Omit<StartGatewayOptions, 'withWorkers'> = {},
): Promise<Shifter> {
  checkDeployment(config, 'worker', system);
  const logger = options.logger ?? createLogger(config);
  const shifter = await createShifter(config, { logger, ...options.components });
  try {
    await shifter.service.startWorkers([system]);
  } catch (error) {
    await shifter.close({ timeoutMs: 1000 });
    throw error;
  }
  logger.info({ system }, 'worker started');
  return shifter;
}
