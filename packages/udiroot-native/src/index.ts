/**
 * `@shifter/udiroot`: the typed side of the udiRoot runtime. The runtime itself is C (`native/`: the setuid
 * `shifter`, `setupRoot`, `unsetupRoot`); compute nodes need no Node.js. This module builds `shifter` command lines
 * for job-script tooling and spawns them.
 *
 * @packageDocumentation
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { ShifterError } from '@shifter/core';

export * from './exit-codes.js';

/** A volume to bind into the container (`--volume=from:to[:ro]`). */
export interface ShifterVolume {
  /** Source path as seen inside the container (e.g. under a site file system or /tmp). */
  from: string;
  /** Target path inside the container; /etc, /var (except /var/tmp), /opt and /opt/udiImage are refused. */
  to: string;
  /** Bind read-only. */
  readOnly?: boolean;
  /** A node-local scratch file system of this many bytes instead of a bind (`perNodeCache=size=…`). */
  perNodeCacheBytes?: number;
}

/** What to run: every field maps to one `shifter` option. */
export interface ShifterOptions {
  /** Image descriptor, `type:tag` (`docker:ubuntu:22.04`, `id:<hex>`, `custom:…`, `local:/path`). */
  image: string;
  /** Command and arguments; empty means the image entrypoint with `entrypoint`, else `/bin/sh`. */
  command?: string[];
  /** Volumes, as objects or as single `from:to[:flags]` strings. */
  volumes?: Array<ShifterVolume | string>;
  /** `true`: `--entrypoint` (image ENTRYPOINT); a string: `--entrypoint=<string>`. */
  entrypoint?: boolean | string;
  /** `true`: `--workdir` (image WORKDIR); a string: `--workdir=<string>`. */
  workdir?: boolean | string;
  /** Variables set inside the container (`--env NAME=VALUE`), applied in insertion order. */
  env?: Record<string, string>;
  /** `--env-file` paths, read by the runtime with the caller's permissions. */
  envFiles?: string[];
  /** `--clearenv`: do not pass the caller's environment into the container. */
  clearEnv?: boolean;
  /** Modules to activate (`--module=a,b`), or `'none'`; omitted means the site's defaultModules. */
  modules?: string[] | 'none';
  /** `--verbose`. */
  verbose?: boolean;
}

/** How to spawn `shifter`. */
export interface RunShifterOptions extends ShifterOptions {
  /** Path of the installed setuid `shifter` (default `shifter`, looked up in PATH). */
  shifterPath?: string;
  /** Working directory of the spawned process (the container starts in the same path unless `workdir` is set). */
  cwd?: string;
  /** Environment of the spawned process (default: this process's). */
  spawnEnv?: NodeJS.ProcessEnv;
  /** `'pipe'` (default) collects stdout/stderr into the result; `'inherit'` passes the terminal through. */
  stdio?: 'pipe' | 'inherit';
  /** Aborting this signal kills the process with SIGTERM. */
  signal?: AbortSignal;
}

/** Outcome of {@link runShifter}. */
export interface RunShifterResult {
  /** Exit status (the command's own, or one of {@link UDI_EXIT_CODES} when the runtime refused or failed). */
  exitCode: number | null;
  /** Terminating signal, if any. */
  signal: NodeJS.Signals | null;
  /** Captured standard output (empty with `stdio: 'inherit'`). */
  stdout: string;
  /** Captured standard error (empty with `stdio: 'inherit'`). */
  stderr: string;
  /** The argv passed to `shifter` (without the program name). */
  args: string[];
}

const ENV_NAME = /^[^=\0]+$/;
const PATH_CHARS = /^[A-Za-z0-9_.+\-/]+$/;

function invalid(message: string, field: string): ShifterError {
  return new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', message, { details: { field } });
}

function volumeArg(volume: ShifterVolume | string): string {
  if (typeof volume === 'string') {
    if (volume === '' || volume.includes(';'))
      throw invalid(`volume "${volume}" must be one from:to[:flags] entry`, 'volumes');
    return volume;
  }
  for (const [key, value] of [
    ['from', volume.from],
    ['to', volume.to],
  ] as const) {
    // The runtime silently drops characters outside this set; refusing here avoids binding a different path.
    if (!value.startsWith('/') || !PATH_CHARS.test(value)) {
      throw invalid(`volume ${key} "${value}" must be an absolute path of [A-Za-z0-9_.+-/]`, 'volumes');
    }
  }
  const flags: string[] = [];
  if (volume.readOnly) flags.push('ro');
  if (volume.perNodeCacheBytes !== undefined) {
    if (!Number.isSafeInteger(volume.perNodeCacheBytes) || volume.perNodeCacheBytes <= 0) {
      throw invalid('perNodeCacheBytes must be a positive integer', 'volumes');
    }
    flags.push(`perNodeCache=size=${volume.perNodeCacheBytes}`);
  }
  return [volume.from, volume.to, ...flags].join(':');
}

/**
 * Build the argument vector for `shifter` (without the program name). Pure; options are checked so that the
 * runtime never receives something it would silently alter.
 *
 * @param options - what to run
 * @returns argv, ending with `--` and the command when one is given
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` for an empty image, a variable name that is empty or
 *   contains `=`, an empty variable value (the runtime refuses those), an empty module list or name, a relative
 *   workdir, or a malformed volume
 */
export function buildShifterArgs(options: ShifterOptions): string[] {
  if (!options.image || /\s/.test(options.image)) throw invalid('image must be a non-empty type:tag', 'image');
  const args = [`--image=${options.image}`];
  for (const volume of options.volumes ?? []) args.push(`--volume=${volumeArg(volume)}`);
  if (options.entrypoint === true) args.push('--entrypoint');
  else if (typeof options.entrypoint === 'string') {
    if (options.entrypoint === '') throw invalid('entrypoint must not be empty', 'entrypoint');
    args.push(`--entrypoint=${options.entrypoint}`);
  }
  if (options.workdir === true) args.push('--workdir');
  else if (typeof options.workdir === 'string') {
    if (!options.workdir.startsWith('/')) throw invalid('workdir must be an absolute path', 'workdir');
    args.push(`--workdir=${options.workdir}`);
  }
  for (const file of options.envFiles ?? []) args.push(`--env-file=${file}`);
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!ENV_NAME.test(name)) throw invalid(`environment variable name "${name}" is invalid`, 'env');
    if (value === '') throw invalid(`environment variable ${name} must have a non-empty value`, 'env');
    args.push(`--env=${name}=${value}`);
  }
  if (options.clearEnv) args.push('--clearenv');
  if (options.modules !== undefined) {
    const list = options.modules === 'none' ? ['none'] : options.modules;
    if (list.length === 0 || list.some((m) => m === '' || m.includes(',')))
      throw invalid('modules must be non-empty names', 'modules');
    args.push(`--module=${list.join(',')}`);
  }
  if (options.verbose) args.push('--verbose');
  if (options.command && options.command.length > 0) args.push('--', ...options.command);
  return args;
}

/**
 * Spawn `shifter` with {@link buildShifterArgs} and wait for it to exit.
 *
 * Contract: the promise resolves with whatever exit status the process had, including the runtime's refusals (see
 * {@link udiExitCodeName}); it rejects only when the options are invalid or the program cannot be started. The child's
 * pipes are owned and closed by this function.
 *
 * @param options - what to run and how to spawn it
 * @returns exit status, signal and (with `stdio: 'pipe'`) the captured output
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` from {@link buildShifterArgs};
 *   `SHIFTER_TOOL_NOT_FOUND` when `shifterPath` cannot be executed
 */
export function runShifter(options: RunShifterOptions): Promise<RunShifterResult> {
  let args: string[];
  try {
    args = buildShifterArgs(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return spawnProgram(options.shifterPath ?? 'shifter', args, options);
}

/** Spawn options shared by the runners. */
interface SpawnSettings {
  cwd?: string;
  spawnEnv?: NodeJS.ProcessEnv;
  stdio?: 'pipe' | 'inherit';
  signal?: AbortSignal;
}

function spawnProgram(program: string, args: string[], options: SpawnSettings): Promise<RunShifterResult> {
  const stdio: StdioOptions = options.stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'];
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      env: options.spawnEnv ?? process.env,
      stdio,
      signal: options.signal,
      killSignal: 'SIGTERM',
    });
    let stdout = '';
    let stderr = '';
    let failed = false;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (error.name === 'AbortError') return; // 'close' reports the signal
      failed = true;
      reject(
        new ShifterError('SHIFTER_TOOL_NOT_FOUND', `cannot run ${program}: ${error.message}`, {
          cause: error,
          details: { program, errno: error.code },
        }),
      );
    });
    child.once('close', (exitCode, signal) => {
      if (!failed) resolve({ exitCode, signal, stdout, stderr, args });
    });
  });
}

/** What `setupRoot` (workload-manager prolog, run as root) should prepare. */
export interface SetupRootOptions {
  /**
   * Image id (hex); the prolog resolves tags to ids at submit time. Exactly one of `imageId` and `localRoot`.
   */
  imageId?: string;
  /**
   * A host directory to use as the root instead of an image (`setupRoot … local <dir>`, the CCM mode; needs
   * `allowLocalChroot=1` in udiRoot.conf). Absolute, without `..`. Exactly one of `imageId` and `localRoot`.
   */
  localRoot?: string;
  /** The job's user name, uid and gid (must match the passwd entry). */
  user: string;
  uid: number;
  gid: number;
  /** User volumes, as for {@link ShifterOptions.volumes}. */
  volumes?: Array<ShifterVolume | string>;
  /** Modules (`-m a,b`), or `'none'`; omitted means the site's defaultModules. */
  modules?: string[] | 'none';
  /** Nodes and task counts for `/var/hostsfile`, e.g. `{ node1: 2, node2: 1 }`. */
  hosts?: Record<string, number>;
  /** `-j`: build job `job`'s own root (`<udiMount>.jobs/<job>/root`, docs/slurm.md) instead of the node's. */
  job?: number;
  /** `-V`. */
  verbose?: boolean;
}

/** A Slurm job id as `setupRoot -j` / `unsetupRoot -j` accept it. */
function validJob(job: number): boolean {
  return Number.isSafeInteger(job) && job >= 1 && job <= 4294967295;
}

/**
 * Build the argument vector for `setupRoot` (without the program name). Pure.
 *
 * @param options - image, user and request; must equal the later `shifter` calls' image, volumes and modules for
 *   them to reuse the root
 * @returns argv ending with `id <imageId>` or `local <localRoot>`
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` for a non-hex id, both or neither of `imageId` and
 *   `localRoot`, a relative local root, a non-positive uid/gid, an empty user, a bad host name or task count, or
 *   invalid volumes/modules
 */
export function buildSetupRootArgs(options: SetupRootOptions): string[] {
  if ((options.imageId === undefined) === (options.localRoot === undefined))
    throw invalid('give exactly one of imageId and localRoot', 'imageId');
  if (options.imageId !== undefined && !/^[0-9a-f]+$/i.test(options.imageId))
    throw invalid('imageId must be hexadecimal', 'imageId');
  if (
    options.localRoot !== undefined &&
    (!options.localRoot.startsWith('/') ||
      options.localRoot.split('/').includes('..') ||
      /[\s\0]/.test(options.localRoot))
  )
    throw invalid('localRoot must be an absolute directory without ".." or white space', 'localRoot');
  if (!options.user || /[\s:]/.test(options.user)) throw invalid('user must be a login name', 'user');
  for (const [field, value] of [
    ['uid', options.uid],
    ['gid', options.gid],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0)
      throw invalid(`${field} must be a positive integer (root is refused)`, field);
  }
  if (options.job !== undefined && !validJob(options.job))
    throw invalid('job must be an integer from 1 to 4294967295', 'job');
  const args: string[] = [];
  if (options.verbose) args.push('-V');
  if (options.job !== undefined) args.push('-j', String(options.job));
  const volumes = (options.volumes ?? []).map(volumeArg);
  if (volumes.length > 0) args.push('-v', volumes.join(';'));
  args.push('-u', options.user, '-U', String(options.uid), '-G', String(options.gid));
  const hosts = Object.entries(options.hosts ?? {});
  if (hosts.length > 0) {
    for (const [host, tasks] of hosts) {
      if (!/^[A-Za-z0-9._-]+$/.test(host) || !Number.isSafeInteger(tasks) || tasks <= 0)
        throw invalid(`bad host entry ${host}/${tasks}`, 'hosts');
    }
    args.push('-N', hosts.map(([host, tasks]) => `${host}/${tasks}`).join(' '));
  }
  if (options.modules !== undefined) {
    const list = options.modules === 'none' ? ['none'] : options.modules;
    if (list.length === 0 || list.some((m) => m === '' || m.includes(',')))
      throw invalid('modules must be non-empty names', 'modules');
    args.push('-m', list.join(','));
  }
  if (options.localRoot !== undefined) args.push('local', options.localRoot);
  else args.push('id', options.imageId!.toLowerCase());
  return args;
}

/**
 * Run `setupRoot` (as root, from a prolog) and wait.
 *
 * @param options - what to prepare, plus `programPath` (default `setupRoot`) and spawn settings
 * @returns exit status and output, as {@link runShifter}
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` from {@link buildSetupRootArgs}; `SHIFTER_TOOL_NOT_FOUND`
 */
export function runSetupRoot(
  options: SetupRootOptions & SpawnSettings & { programPath?: string },
): Promise<RunShifterResult> {
  let args: string[];
  try {
    args = buildSetupRootArgs(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return spawnProgram(options.programPath ?? 'setupRoot', args, options);
}

/**
 * Run `unsetupRoot` (as root, from an epilog): unmount everything setupRoot built (with `job`, only that job's
 * root). Idempotent.
 *
 * @param options - `programPath` (default `unsetupRoot`), `verbose`, `job` (`-j`), spawn settings
 * @returns exit status and output
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` for a bad job id; `SHIFTER_TOOL_NOT_FOUND`
 */
export function runUnsetupRoot(
  options: SpawnSettings & { programPath?: string; verbose?: boolean; job?: number } = {},
): Promise<RunShifterResult> {
  if (options.job !== undefined && !validJob(options.job))
    return Promise.reject(invalid('job must be an integer from 1 to 4294967295', 'job'));
  const args = [...(options.verbose ? ['-V'] : []), ...(options.job !== undefined ? ['-j', String(options.job)] : [])];
  return spawnProgram(options.programPath ?? 'unsetupRoot', args, options);
}
