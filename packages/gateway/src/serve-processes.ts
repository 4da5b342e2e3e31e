/**
 * `serve --processes N`: several serve instances on one host, as `node:cluster` workers sharing the listening socket,
 * so that one gateway host uses several cores. Each process is a complete serve instance (its own store connection,
 * lookup cache and, with `--with-workers`, job workers); they coordinate only through the shared store and Redis, as
 * instances on different hosts do, so the distributed deployment (mongo + redis) is required.
 *
 * The primary process only supervises: it forks the N processes, replaces one that dies after it started serving,
 * stops everything with the exit code of one that dies before (a configuration or store problem would otherwise
 * crash-loop), and passes SIGTERM/SIGINT on, exiting once all have stopped.
 */
import cluster, { type Worker } from 'node:cluster';
import { checkDeployment, type ShifterConfig } from '@shifter/core';

/** Most processes `--processes` accepts. */
export const MAX_SERVE_PROCESSES = 64;

/** Whether this process is one of the processes forked by {@link superviseServeProcesses}. */
export function isServeProcess(): boolean {
  return cluster.isWorker;
}

/**
 * Check the deployment for `count` processes (mongo + redis when more than one), fork them and supervise them.
 * Resolves when the processes are forked; the process exits when they have all stopped.
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` on the embedded store
 */
export function superviseServeProcesses(config: ShifterConfig, count: number, log: (line: string) => void): void {
  checkDeployment(
    { ...config, gateway: { ...config.gateway, instances: Math.max(config.gateway.instances, count) } },
    'serve',
  );
  const listening = new WeakSet<Worker>();
  const alive = new Set<Worker>();
  let stopping = false;
  let exitCode = 0;
  const stop = (code: number): void => {
    stopping = true;
    exitCode = code;
    if (alive.size === 0) process.exit(exitCode);
    for (const worker of alive) worker.process.kill('SIGTERM');
  };
  const fork = (): void => {
    const worker = cluster.fork();
    alive.add(worker);
    worker.on('listening', () => listening.add(worker));
    worker.on('exit', (code, signal) => {
      alive.delete(worker);
      if (stopping) {
        if (alive.size === 0) process.exit(exitCode);
        return;
      }
      if (!listening.has(worker)) {
        log(`serve process ${worker.process.pid} exited before serving (${signal ?? code}); stopping`);
        stop(typeof code === 'number' && code !== 0 ? code : 70);
        return;
      }
      log(`serve process ${worker.process.pid} exited (${signal ?? code}); starting another`);
      fork();
    });
  };
  for (let i = 0; i < count; i++) fork();
  const shutdown = (signal: string) => {
    if (stopping) return;
    log(`${signal}: stopping ${count} serve processes`);
    stop(0);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
