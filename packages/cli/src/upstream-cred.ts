import { spawn } from 'node:child_process';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '@shifter/core';

/** Upstream's login file inside `~/.udiRoot`: lines `<system>:<location>=<munge credential of "user:password">`. */
export const UPSTREAM_CRED_FILE = '.cred';

/** What decoding one stored credential gives: the uid munged saw when it was made, and its payload. */
export interface DecodedCred {
  readonly uid: number;
  readonly payload: string;
}

/** Decodes one stored munge credential; null when munged refuses it (other than for age or reuse). */
export type CredDecoder = (credential: string) => Promise<DecodedCred | null>;

/** One line of upstream's `.cred` file. */
export interface UpstreamCredLine {
  readonly system: string;
  readonly location: string;
  readonly credential: string;
}

/**
 * Parse upstream's `.cred` text. The system ends at the first `:`, the location at the next `=`; the rest is the
 * munge credential (which itself holds `:` and `=`). Malformed lines are skipped, as upstream's reader does.
 * @param text - the file's content
 */
export function parseUpstreamCred(text: string): UpstreamCredLine[] {
  const lines: UpstreamCredLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const colon = line.indexOf(':');
    const equals = line.indexOf('=', colon + 1);
    if (colon <= 0 || equals <= colon + 1 || equals === line.length - 1) continue;
    lines.push({
      system: line.slice(0, colon),
      location: line.slice(colon + 1, equals),
      credential: line.slice(equals + 1),
    });
  }
  return lines;
}

/**
 * The logins of `system` from upstream's `~/.udiRoot/.cred`, decoded as upstream's client decodes them: through
 * munged, accepting expired and replayed credentials (they were made once, at `login`, and are read on every pull),
 * and keeping only those munged says were made by the calling user.
 * @param directory - the `~/.udiRoot` directory
 * @param system - the system whose logins to read
 * @param decode - the munge decoder
 * @param uid - the calling user's uid
 * @returns the logins by location, or null when there is no `.cred` file
 * @throws ConfigError `SHIFTER_CONFIG_INSECURE` when the file is not a regular file of the caller or others may read it
 */
export async function readUpstreamCred(
  directory: string,
  system: string,
  decode: CredDecoder,
  uid: number,
): Promise<Record<string, string> | null> {
  const path = join(directory, UPSTREAM_CRED_FILE);
  let text: string;
  try {
    const info = await lstat(path);
    if (!info.isFile() || info.uid !== uid || (info.mode & 0o077) !== 0) {
      throw new ConfigError('SHIFTER_CONFIG_INSECURE', `${path} must be a regular file you own with mode 0600`, {
        details: { path, mode: (info.mode & 0o777).toString(8) },
      });
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const logins: Record<string, string> = {};
  for (const line of parseUpstreamCred(text)) {
    if (line.system !== system) continue;
    const decoded = await decode(line.credential);
    // SECURITY: a credential someone else made (a planted line) is never sent on this user's behalf.
    if (decoded === null || decoded.uid !== uid || !decoded.payload.includes(':')) continue;
    logins[line.location] = decoded.payload;
  }
  return logins;
}

// unmunge's exit codes that still carry a trustworthy payload: success, expired, replayed (munge(1) EXIT STATUS).
const ACCEPTED_UNMUNGE_EXITS = new Set([0, 15, 17]);

/**
 * A {@link CredDecoder} running `unmunge` (the credential goes to its standard input).
 * @param socketPath - munged socket (`unmunge -S`); munge's default when absent
 * @param executable - the `unmunge` executable (default `unmunge` on PATH)
 */
export function unmungeDecoder(socketPath?: string, executable = 'unmunge'): CredDecoder {
  return (credential) =>
    new Promise((resolve) => {
      const args = [...(socketPath ? ['-S', socketPath] : []), '-N', '-k', 'UID'];
      const child = spawn(executable, args, { stdio: ['pipe', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.on('error', () => resolve(null));
      child.on('close', (code) => {
        const split = stdout.indexOf('\n\n');
        const match = /^UID:\s+(\d+)\s*$/m.exec(stdout.slice(0, split));
        if (code === null || !ACCEPTED_UNMUNGE_EXITS.has(code) || split < 0 || !match) resolve(null);
        else resolve({ uid: Number(match[1]), payload: stdout.slice(split + 2) });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(`${credential}\n`);
    });
}
