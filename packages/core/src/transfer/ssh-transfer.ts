/**
 * Transfer to a remote system's image directory over ssh/scp (upstream `accesstype: remote`).
 *
 * Every command is spawned with an argument array (no local shell). The remote side does run a shell (that is how
 * ssh works), so every remote word is single-quoted, and ids, formats, temp names and the image directory are
 * validated to a small character set before they get there. Host keys are checked strictly against a
 * known_hosts file the site provides; `BatchMode=yes` makes a missing key or password prompt a failure, not a hang.
 *
 * @packageDocumentation
 */
import { spawn } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { NotFoundError, ShifterError, TransferError } from '../errors/index.js';
import { checkIdAndFormat, checkImageDir, imageFileNames, imageMode, tempFileName } from './transfer-names.js';
import { TRANSFER_TEMP_PATTERN, type Transfer, type TransferFileOptions, type TransferPutOptions } from './transfer.js';

/** Options of {@link SshTransfer}. */
export interface SshTransferOptions {
  /** Host name(s) of the system's login node(s); tried in order when a connection fails. */
  readonly host: string | readonly string[];
  /** Remote user (upstream `ssh.username`). */
  readonly username: string;
  /** Private key file (upstream `ssh.key`); absolute path. Default: ssh's own choice. */
  readonly key?: string;
  /** Image directory on the remote host (upstream `ssh.imageDir`). */
  readonly imageDir: string;
  /** known_hosts file holding the remote host key(s); required, host keys are always checked. */
  readonly knownHostsFile: string;
  /** Remote port (default 22). */
  readonly port?: number;
  /** Extra arguments for ssh (upstream `sshCmdOptions`), e.g. `['-o', 'ControlMaster=auto', …]`. */
  readonly sshOptions?: readonly string[];
  /** Extra arguments for scp (upstream `scpCmdOptions`). */
  readonly scpOptions?: readonly string[];
  /** ssh executable (default `ssh` on PATH). */
  readonly sshPath?: string;
  /** scp executable (default `scp` on PATH). */
  readonly scpPath?: string;
  /** ssh `ConnectTimeout`, seconds (default 10). */
  readonly connectTimeoutSeconds?: number;
  /** Kill a single ssh/scp run after this many ms (default 1 hour: large images). */
  readonly commandTimeoutMs?: number;
}

interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,252}$/;
// Exit codes of the remote scripts below.
const EXIT_NO_IMAGE = 3;
// ssh exits 255 when it could not connect or authenticate; scp reports such failures with these messages.
const CONNECTION_FAILURE =
  /Connection refused|Connection timed out|No route to host|Could not resolve|Connection closed|Network is unreachable|kex_exchange_identification|Host key verification failed|Permission denied/;

/** Quote one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * {@link Transfer} over ssh and scp.
 *
 * A put takes four connections (pre-create the temp files with umask 077 so a private image is never readable on
 * the way, copy the image, copy the meta, then chmod + sync + rename in one go); add `ControlMaster`/`ControlPath`
 * to `sshOptions` and `scpOptions` to reuse one connection.
 *
 * @example
 * ```ts
 * const transfer = new SshTransfer({
 *   host: ['login1.example.org', 'login2.example.org'], username: 'shifter', key: '/etc/shifter/id_ed25519',
 *   knownHostsFile: '/etc/shifter/known_hosts', imageDir: '/global/shifter/images',
 * });
 * ```
 */
export class SshTransfer implements Transfer {
  readonly imageDir: string;
  readonly #hosts: readonly string[];
  readonly #options: SshTransferOptions;

  /** @throws ShifterError `SHIFTER_CONFIG_INVALID` for an unusable host, user, key, known_hosts path or imageDir. */
  constructor(options: SshTransferOptions) {
    this.imageDir = checkImageDir(options.imageDir);
    const hosts = typeof options.host === 'string' ? [options.host] : [...options.host];
    if (hosts.length === 0 || !hosts.every((h) => HOST_NAME.test(h))) {
      throw configInvalid(`ssh hosts must be host names or addresses, got ${JSON.stringify(options.host)}`);
    }
    if (!USER_NAME.test(options.username))
      throw configInvalid(`ssh username ${JSON.stringify(options.username)} is not valid`);
    if (options.key !== undefined && !isAbsolute(options.key)) throw configInvalid('ssh key must be an absolute path');
    if (!isAbsolute(options.knownHostsFile)) throw configInvalid('knownHostsFile must be an absolute path');
    if (options.port !== undefined && !(Number.isInteger(options.port) && options.port > 0 && options.port < 65536)) {
      throw configInvalid(`ssh port ${options.port} is not valid`);
    }
    this.#hosts = hosts;
    this.#options = options;
  }

  #commonArgs(portFlag: '-p' | '-P'): string[] {
    const o = this.#options;
    return [
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${o.knownHostsFile}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'UpdateHostKeys=no',
      '-o',
      `ConnectTimeout=${o.connectTimeoutSeconds ?? 10}`,
      ...(o.key ? ['-i', o.key, '-o', 'IdentitiesOnly=yes'] : []),
      ...(o.port ? [portFlag, String(o.port)] : []),
    ];
  }

  /** Run `script` on the first host that accepts a connection. */
  async #ssh(script: string, signal?: AbortSignal): Promise<RunResult> {
    const o = this.#options;
    let last: RunResult | undefined;
    for (const host of this.#hosts) {
      last = await this.#run(
        o.sshPath ?? 'ssh',
        [...this.#commonArgs('-p'), ...(o.sshOptions ?? []), `${o.username}@${host}`, script],
        signal,
      );
      if (last.code !== 255) return last;
    }
    throw transferFailed('ssh could not reach any host', last!);
  }

  /** Copy a local file to a remote path. */
  async #scp(localPath: string, remotePath: string, signal?: AbortSignal): Promise<void> {
    const o = this.#options;
    let last: RunResult | undefined;
    for (const host of this.#hosts) {
      last = await this.#run(
        o.scpPath ?? 'scp',
        [
          ...this.#commonArgs('-P'),
          '-q',
          ...(o.scpOptions ?? []),
          '--',
          localPath,
          `${o.username}@${host}:${remotePath}`,
        ],
        signal,
      );
      if (last.code === 0) return;
      if (!CONNECTION_FAILURE.test(last.stderr)) break;
    }
    throw transferFailed(`scp of ${localPath} failed`, last!);
  }

  #run(command: string, args: string[], signal?: AbortSignal): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const child = spawn(command, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: this.#options.commandTimeoutMs ?? 3_600_000,
        ...(signal ? { signal } : {}),
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => {
        if (stderr.length < 16_384) stderr += chunk.toString();
      });
      child.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') {
          reject(new ShifterError('SHIFTER_TOOL_NOT_FOUND', `${command} is not installed`, { cause: error }));
        } else if (error.name === 'AbortError') {
          reject(new TransferError('SHIFTER_TRANSFER_FAILED', `${command} cancelled`, { cause: error }));
        } else {
          reject(
            new TransferError('SHIFTER_TRANSFER_FAILED', `${command} failed to start: ${error.message}`, {
              cause: error,
            }),
          );
        }
      });
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  #path(name: string): string {
    return `${this.imageDir}/${name}`;
  }

  async put(localImage: string, localMeta: string, id: string, options: TransferPutOptions = {}): Promise<void> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const tempImage = this.#path(tempFileName(id, format));
    const tempMeta = this.#path(tempFileName(id, 'meta'));
    const mode = imageMode(options.private).toString(8).padStart(4, '0');
    const q = shellQuote;
    try {
      await this.#checked(
        await this.#ssh(
          `set -e; mkdir -p ${q(this.imageDir)}; umask 077; set -C; : > ${q(tempImage)}; : > ${q(tempMeta)}`,
          options.signal,
        ),
        'creating temp files',
      );
      await this.#scp(localImage, tempImage, options.signal);
      await this.#scp(localMeta, tempMeta, options.signal);
      // Image renamed first, meta last; sync the data before the renames and the directory after them.
      await this.#checked(
        await this.#ssh(
          [
            'set -e',
            `chmod ${mode} ${q(tempImage)} ${q(tempMeta)}`,
            `sync -- ${q(tempImage)} ${q(tempMeta)} 2>/dev/null || sync`,
            `mv -f -- ${q(tempImage)} ${q(this.#path(names.image))}`,
            `mv -f -- ${q(tempMeta)} ${q(this.#path(names.meta))}`,
            `sync -- ${q(this.imageDir)} 2>/dev/null || sync`,
          ].join('; '),
          options.signal,
        ),
        'installing the image',
      );
    } catch (error) {
      await this.#ssh(`rm -f -- ${q(tempImage)} ${q(tempMeta)}`).catch(() => undefined);
      throw error;
    }
  }

  async putMeta(localMeta: string, id: string, options: TransferPutOptions = {}): Promise<void> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const image = this.#path(names.image);
    const tempMeta = this.#path(tempFileName(id, 'meta'));
    const mode = imageMode(options.private).toString(8).padStart(4, '0');
    const q = shellQuote;
    const prepared = await this.#ssh(
      `[ -f ${q(image)} ] || exit ${EXIT_NO_IMAGE}; set -e; umask 077; set -C; : > ${q(tempMeta)}`,
      options.signal,
    );
    if (prepared.code === EXIT_NO_IMAGE) {
      throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `${names.image} is not in ${this.imageDir}`, {
        details: { id },
      });
    }
    try {
      await this.#checked(prepared, 'creating the temp meta');
      await this.#scp(localMeta, tempMeta, options.signal);
      await this.#checked(
        await this.#ssh(
          [
            'set -e',
            `chmod ${mode} ${q(image)} ${q(tempMeta)}`,
            `sync -- ${q(tempMeta)} 2>/dev/null || sync`,
            `mv -f -- ${q(tempMeta)} ${q(this.#path(names.meta))}`,
            `sync -- ${q(this.imageDir)} 2>/dev/null || sync`,
          ].join('; '),
          options.signal,
        ),
        'installing the meta',
      );
    } catch (error) {
      await this.#ssh(`rm -f -- ${q(tempMeta)}`).catch(() => undefined);
      throw error;
    }
  }

  async remove(id: string, options: TransferFileOptions = {}): Promise<boolean> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const q = shellQuote;
    // Meta first: once it is gone the runtime no longer considers the image ready.
    const result = await this.#ssh(
      `removed=no; for f in ${q(this.#path(names.meta))} ${q(this.#path(names.image))}; do ` +
        `if [ -e "$f" ] || [ -L "$f" ]; then rm -f -- "$f" || exit 1; removed=yes; fi; done; echo "removed=$removed"`,
      options.signal,
    );
    await this.#checked(result, 'removing the image');
    return result.stdout.includes('removed=yes');
  }

  async exists(id: string, options: TransferFileOptions = {}): Promise<boolean> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const q = shellQuote;
    const result = await this.#ssh(
      `if [ -f ${q(this.#path(names.image))} ] && [ -f ${q(this.#path(names.meta))} ]; then echo present; else echo absent; fi`,
      options.signal,
    );
    await this.#checked(result, 'checking for the image');
    return result.stdout.trim() === 'present';
  }

  async cleanStale(): Promise<number> {
    const q = shellQuote;
    const listing = await this.#ssh(`cd ${q(this.imageDir)} 2>/dev/null || exit 0; ls -A`);
    await this.#checked(listing, 'listing the image directory');
    // Only names matching the strict pattern are used: they are safe to quote and are ours.
    const stale = listing.stdout.split('\n').filter((name) => TRANSFER_TEMP_PATTERN.test(name));
    if (stale.length === 0) return 0;
    const removed = await this.#ssh(`cd ${q(this.imageDir)} && rm -f -- ${stale.map(q).join(' ')}`);
    await this.#checked(removed, 'removing stale temp files');
    return stale.length;
  }

  async #checked(result: RunResult, what: string): Promise<void> {
    if (result.code !== 0) throw transferFailed(`${what} on the remote host failed`, result);
  }
}

function transferFailed(message: string, result: RunResult): TransferError {
  return new TransferError(
    'SHIFTER_TRANSFER_FAILED',
    `${message} (exit ${result.code}): ${result.stderr.trim().slice(0, 500)}`,
    {
      details: { exitCode: result.code, stderr: result.stderr.trim().slice(0, 2000) },
    },
  );
}

function configInvalid(message: string): ShifterError {
  return new ShifterError('SHIFTER_CONFIG_INVALID', message);
}
