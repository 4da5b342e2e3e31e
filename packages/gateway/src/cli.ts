/**
 * `shifter-gateway serve --config FILE [--host H] [--port P] [--with-workers] [--processes N]`,
 * `shifter-gateway worker --config FILE --system NAME` and
 * `shifter-gateway migrate-upstream --config FILE [--mongo-url URL] [--mongo-database NAME] [--image-dir SYSTEM=DIR]… [--dry-run] [--json]`.
 *
 * Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 64 usage, 78 configuration, 69 unavailable store, 70 other.
 */
import { parseArgs } from 'node:util';
import {
  ExitCode,
  ShifterError,
  configFileFromEnvironment,
  loadConfig,
  processEnvironment,
  toShifterError,
} from '@shifter/core';
import { formatMigrationReport, runMigration } from './migrate-command.js';
import { GATEWAY_VERSION, startGateway, startWorker } from './server.js';
import { isServeProcess, MAX_SERVE_PROCESSES, superviseServeProcesses } from './serve-processes.js';

const USAGE = `usage:
  shifter-gateway serve  --config FILE [--host HOST] [--port PORT] [--with-workers] [--processes N]
  shifter-gateway worker --config FILE --system NAME
  shifter-gateway migrate-upstream --config FILE [--mongo-url URL] [--mongo-database NAME]
                                   [--image-dir SYSTEM=DIR]... [--dry-run] [--json]
  shifter-gateway --version

The config file is Shifter's JSON config or an upstream imagemanager.json; without --config, SHIFTER_CONFIG or
GWCONFIG name it. See docs/gateway.md and docs/configuration.md; migrate-upstream: docs/migration.md.`;

function fail(error: unknown): never {
  const shifterError = toShifterError(error);
  process.stderr.write(`shifter-gateway: ${shifterError.code}: ${shifterError.message}\n`);
  process.exit(shifterError.code === 'SHIFTER_USAGE_INVALID_ARGUMENT' ? ExitCode.USAGE : shifterError.exitCode);
}

/** Run the command line; resolves when the process should keep running (servers), exits on errors. */
export async function main(argv: readonly string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string' },
        system: { type: 'string' },
        'with-workers': { type: 'boolean' },
        processes: { type: 'string' },
        'mongo-url': { type: 'string' },
        'mongo-database': { type: 'string' },
        'image-dir': { type: 'string', multiple: true },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    process.exit(ExitCode.USAGE);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${GATEWAY_VERSION}\n`);
    return;
  }
  const command = positionals[0];
  if (
    values.help ||
    (command !== 'serve' && command !== 'worker' && command !== 'migrate-upstream') ||
    positionals.length > 1
  ) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    if (!values.help) process.exit(ExitCode.USAGE);
    return;
  }
  const environment = processEnvironment();
  const file = values.config ?? configFileFromEnvironment(environment);
  const gateway: Record<string, unknown> = {};
  if (values.host !== undefined) gateway.host = values.host;
  if (values.port !== undefined) {
    if (!/^\d{1,5}$/.test(values.port))
      fail(new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `--port must be a number, got ${values.port}`));
    gateway.port = Number(values.port);
  }
  let config;
  try {
    config = await loadConfig({
      ...(file ? { file } : {}),
      env: environment,
      overrides: Object.keys(gateway).length > 0 ? { gateway } : {},
      onWarning: (warning) => process.stderr.write(`shifter-gateway: warning: ${warning}\n`),
    });
  } catch (error) {
    fail(error);
  }

  if (command === 'migrate-upstream') {
    try {
      const report = await runMigration(config, {
        mongoUrl: values['mongo-url'],
        mongoDatabase: values['mongo-database'],
        imageDirs: values['image-dir'],
        dryRun: values['dry-run'] === true,
      });
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatMigrationReport(report));
      return;
    } catch (error) {
      fail(error);
    }
  }

  let processes = 1;
  if (values.processes !== undefined) {
    processes = /^\d{1,3}$/.test(values.processes) ? Number(values.processes) : 0;
    if (processes < 1 || processes > MAX_SERVE_PROCESSES || command !== 'serve')
      fail(
        new ShifterError(
          'SHIFTER_USAGE_INVALID_ARGUMENT',
          `--processes takes 1 to ${MAX_SERVE_PROCESSES} and only with serve, got ${values.processes}`,
        ),
      );
  }
  if (processes > 1 && !isServeProcess()) {
    try {
      superviseServeProcesses(config, processes, (line) => process.stderr.write(`shifter-gateway: ${line}\n`));
    } catch (error) {
      fail(error);
    }
    return;
  }

  let stop: () => Promise<void>;
  try {
    if (command === 'serve') {
      const running = await startGateway(config, { withWorkers: values['with-workers'] === true });
      stop = running.close;
    } else {
      if (!values.system) fail(new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'worker needs --system NAME'));
      const shifter = await startWorker(config, values.system);
      stop = () => shifter.close({ timeoutMs: 10_000 });
    }
  } catch (error) {
    fail(error);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`shifter-gateway: ${signal}: shutting down\n`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => fail(error),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

await main(process.argv.slice(2));
