import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { ConversionError } from '../errors/index.js';

/** Options of {@link runTool}. */
export interface RunToolOptions {
  /** Bytes piped to the tool's stdin (closed immediately when absent). The stream is consumed, not destroyed. */
  stdin?: Readable;
  /** Working directory. */
  cwd?: string;
  /** Environment; a minimal `PATH`-only environment when absent, so nothing from ours leaks into the tool. */
  env?: NodeJS.ProcessEnv;
  /** Kills the tool (SIGKILL) when aborted. */
  signal?: AbortSignal;
  /** How much of stderr to keep for the error details (default 16 KiB: the first and the last 8 KiB). */
  stderrLimit?: number;
}

/** How a tool run ended. */
export interface RunToolResult {
  /** Always 0 (other codes throw). */
  exitCode: number;
  /** The kept head and tail of stderr. */
  stderr: string;
  /** Wall time in milliseconds. */
  durationMs: number;
}

function summarize(stderr: string): string {
  const lines = stderr.trim().split('\n');
  return lines.length <= 2 ? lines.join(' | ') : `${lines[0]} | … | ${lines.at(-1)}`;
}

/**
 * Run an external tool with an argument array (never a shell), capture its stderr, and check its exit code —
 * upstream Shifter ignored mksquashfs's exit code and shipped broken images.
 *
 * @param command - executable name or path
 * @param args - arguments, passed verbatim
 * @param options - stdin, cwd, env, abort signal
 * @returns exit code 0 and the kept stderr
 * @throws {@link ConversionError} `SHIFTER_TOOL_NOT_FOUND` when the executable does not exist;
 *   `SHIFTER_CONVERSION_FAILED` when it exits non-zero, dies from a signal or is aborted
 *   (`details: { tool, args, exitCode, signal, stderr }`)
 */
export function runTool(command: string, args: string[], options: RunToolOptions = {}): Promise<RunToolResult> {
  const limit = options.stderrLimit ?? 16 * 1024;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    options.signal?.throwIfAborted();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
      stdio: [options.stdin ? 'pipe' : 'ignore', 'ignore', 'pipe'],
    });
    // Keep the head (where tools name the bad option) and the tail (where they say what finally failed).
    let head = '';
    let tail = '';
    let dropped = false;
    let settled = false;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      if (head.length < limit / 2) {
        const room = limit / 2 - head.length;
        head += text.slice(0, room);
        text = text.slice(room);
      }
      if (text.length === 0) return;
      const joined = tail + text;
      if (joined.length > limit / 2) dropped = true;
      tail = joined.slice(-limit / 2);
    });
    const stderrText = () => (dropped ? `${head}\n[…]\n${tail}` : head + tail);
    const onAbort = () => child.kill('SIGKILL');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.stdin && child.stdin) {
      // EPIPE when the tool exits early is reported through its exit code instead.
      child.stdin.on('error', () => undefined);
      options.stdin.on('error', () => child.kill('SIGKILL'));
      options.stdin.pipe(child.stdin);
    }
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      if (error.code === 'ENOENT') {
        reject(
          new ConversionError('SHIFTER_TOOL_NOT_FOUND', `${command} is not installed`, {
            cause: error,
            details: { tool: command },
          }),
        );
      } else {
        reject(
          new ConversionError('SHIFTER_CONVERSION_FAILED', `cannot run ${command}: ${error.message}`, {
            cause: error,
            details: { tool: command, args },
          }),
        );
      }
    });
    child.once('close', (exitCode, signal) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      const durationMs = performance.now() - started;
      const stderr = stderrText();
      if (exitCode === 0) {
        resolve({ exitCode, stderr, durationMs });
        return;
      }
      const why = options.signal?.aborted
        ? 'was aborted'
        : signal
          ? `was killed by ${signal}`
          : `exited with ${exitCode}`;
      reject(
        new ConversionError('SHIFTER_CONVERSION_FAILED', `${command} ${why}: ${summarize(stderr)}`, {
          cause: options.signal?.aborted ? options.signal.reason : undefined,
          details: { tool: command, args, exitCode, signal, stderr: stderr.trim() },
        }),
      );
    });
  });
}
