import { spawn } from 'node:child_process';
import { AuthError } from '@shifter/core';

/** Options of {@link mungeEncodeWithCli}. */
export interface MungeCliOptions {
  /** munged socket (`munge -S`); munge's default socket when absent. */
  socketPath?: string;
  /** The `munge` executable (default `munge` on PATH). */
  executable?: string;
}

/**
 * Make a munge credential holding `payload` by running the `munge` command.
 *
 * The payload goes to munge's standard input, never its argument list: it may hold registry passwords, and a
 * process's arguments are visible to every user on the node.
 *
 * @param payload - text to sign (may be empty)
 * @param options - socket and executable
 * @returns the credential (`MUNGE:…:`)
 * @throws AuthError `SHIFTER_AUTH_UNAVAILABLE` when `munge` is missing or munged cannot be reached
 */
export function mungeEncodeWithCli(payload: string, options: MungeCliOptions = {}): Promise<string> {
  const executable = options.executable ?? 'munge';
  const args = options.socketPath ? ['-S', options.socketPath] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(executable, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(
        new AuthError(
          'SHIFTER_AUTH_UNAVAILABLE',
          `cannot run ${executable} (${error.code ?? error.message}): install munge or fix PATH`,
          {
            cause: error,
            details: { executable },
          },
        ),
      );
    });
    child.on('close', (code) => {
      const credential = stdout.trim();
      if (code === 0 && credential.startsWith('MUNGE:')) {
        resolve(credential);
        return;
      }
      const reason = stderr.trim().replace(/^munge:\s*/, '') || `exit status ${code}`;
      reject(
        new AuthError('SHIFTER_AUTH_UNAVAILABLE', `munge could not sign the request: ${reason}; is munged running?`, {
          details: { executable, socketPath: options.socketPath ?? null, exitCode: code },
        }),
      );
    });
    // EPIPE when munge exits early is reported through 'close' above.
    child.stdin.on('error', () => undefined);
    child.stdin.end(payload);
  });
}
