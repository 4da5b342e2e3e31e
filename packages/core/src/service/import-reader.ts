/**
 * Reading a file to import as the user who asked for it, without trusting the file.
 *
 * A small reader process runs with the caller's uid, gid and groups (`setpriv` when the worker is root), so the
 * kernel checks the caller's permissions, not the worker's. The reader opens the path once, without blocking
 * (`O_NONBLOCK`, so a FIFO with no writer cannot hold it), and checks the open descriptor with `fstat`: only a
 * regular file no larger than the limit is copied. There is no stat-then-open window for a swap, because the checks
 * are made on the descriptor that is then read. The worker side counts the bytes again, stops at the limit, obeys
 * the job's abort signal and the import deadline, and handles every stream error (a full scratch file system
 * answers `SHIFTER_NO_SPACE` instead of crashing the process). On any failure the partial copy is removed.
 *
 * @packageDocumentation
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ShifterError } from '../errors/index.js';

/** Who the file is read as (the parts of a caller an import job keeps). */
export interface ImportReadCaller {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly user: string;
}

/** Limits of one {@link copyFileAsCaller}. */
export interface ImportReadOptions {
  /** Largest file accepted, bytes (`limits.maxImportBytes`). */
  readonly maxBytes: number;
  /** How long reading may take, ms (`limits.importTimeoutMs`). */
  readonly timeoutMs: number;
  /** The job's abort signal. */
  readonly signal?: AbortSignal;
  /**
   * Makes the signal that ends reading at the deadline (default `AbortSignal.timeout(timeoutMs)`). Tests pass one
   * they abort themselves, so the deadline passes when they say instead of after they waited for it.
   */
  readonly deadline?: (timeoutMs: number) => AbortSignal;
}

/** Exit codes of the reader process (above 1, which node uses for an uncaught error). */
const EXIT_OPEN = 10;
const EXIT_NOT_REGULAR = 11;
const EXIT_TOO_LARGE = 12;

// Runs as the caller under plain `node` (no loaders, empty environment). argv: path, maxBytes.
// fstat on the descriptor it reads from: what is checked is what is copied.
const READER = `
const fs = require('node:fs');
const [path, maxText] = process.argv.slice(1);
const max = Number(maxText);
let fd;
try {
  fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
} catch (error) {
  process.stderr.write('cannot open: ' + (error.code || error.message));
  process.exit(${EXIT_OPEN});
}
const st = fs.fstatSync(fd);
if (!st.isFile()) {
  const kind = st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'not a regular file';
  process.stderr.write(kind);
  process.exit(${EXIT_NOT_REGULAR});
}
if (st.size > max) {
  process.stderr.write(String(st.size));
  process.exit(${EXIT_TOO_LARGE});
}
const input = fs.createReadStream('', { fd, start: 0, end: max, highWaterMark: 1 << 20 });
input.on('error', (error) => { process.stderr.write('read failed: ' + (error.code || error.message)); process.exit(${EXIT_OPEN}); });
process.stdout.on('error', () => process.exit(${EXIT_OPEN}));
input.pipe(process.stdout);
`;

/** The command that runs the reader as `caller`, or null when this process cannot take the caller's identity. */
export function readerCommand(
  caller: ImportReadCaller,
  path: string,
  maxBytes: number,
  self = process.getuid?.(),
): string[] | null {
  const reader = [process.execPath, '-e', READER, path, String(maxBytes)];
  if (self === 0) {
    return [
      'setpriv',
      `--reuid=${caller.uid}`,
      `--regid=${caller.gid}`,
      caller.groups.length > 0 ? `--groups=${caller.groups.join(',')}` : '--clear-groups',
      '--',
      ...reader,
    ];
  }
  return self === caller.uid ? reader : null;
}

const sizeLimit = (maxBytes: number, path: string, size?: number): ShifterError =>
  new ShifterError(
    'SHIFTER_SIZE_LIMIT',
    `the file to import is larger than the limit of ${maxBytes} bytes (limits.maxImportBytes)`,
    {
      details: { filepath: path, maxBytes, ...(size === undefined ? {} : { size }) },
    },
  );

/**
 * Copy `path` to `destination` (created new, mode 0600) reading it as `caller`.
 *
 * @param caller - uid, gid and groups to read as
 * @param path - absolute path of the file on this host
 * @param destination - new local file; removed again on failure
 * @param options - size limit, deadline, abort signal
 * @returns the number of bytes copied
 * @throws {@link ShifterError} `SHIFTER_IMPORT_INVALID` (cannot be read by the caller, or not a regular file),
 *   `SHIFTER_SIZE_LIMIT` (larger than `maxBytes`), `SHIFTER_IMPORT_TIMEOUT` (deadline passed),
 *   `SHIFTER_NO_SPACE` (the destination's file system is full), `SHIFTER_IO_FAILED` (other write errors),
 *   `SHIFTER_IMPORT_NOT_ALLOWED` (the worker is neither root nor the caller); the signal's reason when aborted
 */
export async function copyFileAsCaller(
  caller: ImportReadCaller,
  path: string,
  destination: string,
  options: ImportReadOptions,
): Promise<number> {
  const command = readerCommand(caller, path, options.maxBytes);
  if (!command)
    throw new ShifterError(
      'SHIFTER_IMPORT_NOT_ALLOWED',
      'the worker cannot read files as another user (it is not root)',
    );
  options.signal?.throwIfAborted();

  const deadline = (options.deadline ?? AbortSignal.timeout)(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
  });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 2000) stderr += chunk.toString();
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  signal.addEventListener('abort', kill, { once: true });

  let copied = 0;
  let overLimit = false;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      copied += chunk.length;
      if (copied > options.maxBytes) {
        overLimit = true;
        kill();
        done(sizeLimit(options.maxBytes, path));
        return;
      }
      done(null, chunk);
    },
  });
  const out = createWriteStream(destination, { flags: 'wx', mode: 0o600 });
  // Closed only after its file was created, so removing the copy after this cannot race the stream's own open.
  const outClosed = new Promise<void>((resolve) => out.once('close', () => resolve()));
  let created = false;
  out.once('open', () => (created = true));
  try {
    const copiedAll = pipeline(child.stdout!, counter, out, { signal });
    const [copy, exit] = await Promise.allSettled([copiedAll, exited]);
    if (signal.aborted) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw new ShifterError(
        'SHIFTER_IMPORT_TIMEOUT',
        `reading the file to import took longer than ${options.timeoutMs} ms (limits.importTimeoutMs)`,
        {
          details: { filepath: path, timeoutMs: options.timeoutMs },
        },
      );
    }
    if (overLimit) throw sizeLimit(options.maxBytes, path);
    if (copy.status === 'rejected') throw writeError(copy.reason, destination);
    const result = exit.status === 'fulfilled' ? exit.value : { code: null };
    if (result.error)
      throw new ShifterError('SHIFTER_TOOL_NOT_FOUND', `cannot start the import reader: ${result.error.message}`, {
        cause: result.error,
      });
    if (result.code === EXIT_NOT_REGULAR) {
      throw new ShifterError(
        'SHIFTER_IMPORT_INVALID',
        `only regular files can be imported; ${path} is ${stderr.trim() || 'not a regular file'}`,
        {
          details: { filepath: path, reason: 'not-regular' },
        },
      );
    }
    if (result.code === EXIT_TOO_LARGE) throw sizeLimit(options.maxBytes, path, Number(stderr.trim()) || undefined);
    if (result.code !== 0) {
      throw new ShifterError(
        'SHIFTER_IMPORT_INVALID',
        `the file cannot be read as user ${caller.user}: ${stderr.trim().slice(0, 300)}`,
        {
          details: { filepath: path },
        },
      );
    }
    return copied;
  } catch (error) {
    kill();
    out.destroy();
    await outClosed;
    if (created) await rm(destination, { force: true }).catch(() => undefined);
    throw error;
  } finally {
    signal.removeEventListener('abort', kill);
  }
}

/** A failure of writing the local copy as a catalogue error. */
export function writeError(error: unknown, destination: string): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new ShifterError('SHIFTER_NO_SPACE', `no space left for ${destination}`, {
      cause: error,
      details: { errno: code },
    });
  }
  return new ShifterError(
    'SHIFTER_IO_FAILED',
    `writing ${destination} failed: ${(error as Error)?.message ?? String(error)}`,
    {
      cause: error,
      details: { errno: code ?? null },
    },
  );
}
