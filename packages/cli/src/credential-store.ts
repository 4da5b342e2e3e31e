import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, ShifterError } from '@shifter/core';
import { type CredDecoder, readUpstreamCred } from './upstream-cred.js';

/** Directory under the home directory holding the login store (upstream's directory). */
export const CREDENTIAL_DIR = '.udiRoot';
/** File name of the login store inside {@link CREDENTIAL_DIR}. */
export const CREDENTIAL_FILE = 'credentials.json';

interface StoreFile {
  version: 1;
  /** system → location → "user:password" */
  systems: Record<string, Record<string, string>>;
}

/** Registry logins of one system, by location (`default` for any other), as `"user:password"`. */
export type SystemCredentials = Record<string, string>;

// The store of a user who never logged in with this client (frozen: save() builds a new one from it).
const ABSENT: StoreFile = Object.freeze({ version: 1, systems: Object.freeze({}) }) as StoreFile;

const LOCATION = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$/;

/**
 * The user's registry logins for private-image pulls: `~/.udiRoot/credentials.json`, mode 0600 inside a 0700
 * directory, written atomically (temp file + rename). Logins are kept per system, because one user may log in to
 * the same registry name on two systems with different accounts.
 */
export class CredentialStore {
  /** Directory of the store. */
  readonly directory: string;
  /** Path of the store file. */
  readonly path: string;

  readonly #upstream: CredDecoder | undefined;

  /**
   * @param home - the user's home directory
   * @param options - `upstream`: decoder for upstream's munge-encoded `~/.udiRoot/.cred`, read when there is no
   *   `credentials.json` (a user who logged in with upstream's client keeps those logins)
   */
  constructor(home: string, options: { upstream?: CredDecoder } = {}) {
    this.directory = join(home, CREDENTIAL_DIR);
    this.path = join(this.directory, CREDENTIAL_FILE);
    this.#upstream = options.upstream;
  }

  /**
   * The logins saved for `system` (empty when none). Without `credentials.json`, the logins of upstream's `.cred`
   * (when a decoder was given and the file exists).
   * @throws ConfigError `SHIFTER_CONFIG_INSECURE` when the file is readable by others or not owned by the caller;
   *   `SHIFTER_CONFIG_INVALID` when it is not the store's JSON
   */
  async read(system: string): Promise<SystemCredentials> {
    const store = await this.#load();
    if (store === ABSENT && this.#upstream) {
      const upstream = await readUpstreamCred(this.directory, system, this.#upstream, process.getuid?.() ?? -1);
      if (upstream) return upstream;
    }
    return { ...(store.systems[system] ?? {}) };
  }

  /**
   * Save (or replace) the login of `location` on `system`.
   * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` for a bad location, an empty user name or one holding `:`
   * @throws ConfigError `SHIFTER_CONFIG_INSECURE` when the directory belongs to someone else
   */
  async save(system: string, location: string, username: string, password: string): Promise<void> {
    if (!LOCATION.test(location)) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `"${location}" is not a registry location name`, {
        details: { location },
      });
    }
    if (username === '' || username.includes(':') || /[\r\n]/.test(username)) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        'the user name must be non-empty and hold no ":" or newline',
      );
    }
    if (/[\r\n]/.test(password))
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'the password must not hold a newline');
    await this.#ensureDirectory();
    const loaded = await this.#load();
    const store: StoreFile = loaded === ABSENT ? { version: 1, systems: {} } : loaded;
    (store.systems[system] ??= {})[location] = `${username}:${password}`;
    await this.#write(store);
  }

  async #ensureDirectory(): Promise<void> {
    try {
      await mkdir(this.directory, { mode: 0o700 });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot create ${this.directory}`, error);
    }
    const info = await lstat(this.directory);
    if (!info.isDirectory() || info.uid !== process.getuid?.()) {
      throw new ConfigError('SHIFTER_CONFIG_INSECURE', `${this.directory} must be a directory you own`, {
        details: { path: this.directory },
      });
    }
    // SECURITY: a directory others can list or enter would expose the temp file between create and rename.
    if ((info.mode & 0o077) !== 0) await chmod(this.directory, 0o700);
  }

  async #load(): Promise<StoreFile> {
    let text: string;
    try {
      const info = await lstat(this.path);
      if (!info.isFile() || info.uid !== process.getuid?.() || (info.mode & 0o077) !== 0) {
        throw new ConfigError(
          'SHIFTER_CONFIG_INSECURE',
          `${this.path} must be a regular file you own with mode 0600: run "chmod 600 ${this.path}" or log in again`,
          {
            details: { path: this.path, mode: (info.mode & 0o777).toString(8) },
          },
        );
      }
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ABSENT;
      if (ShifterError.isInstance(error)) throw error;
      throw ioError(`cannot read ${this.path}`, error);
    }
    try {
      const parsed = JSON.parse(text) as Partial<StoreFile>;
      if (parsed.version !== 1 || typeof parsed.systems !== 'object' || parsed.systems === null)
        throw new Error('not a store');
      for (const locations of Object.values(parsed.systems)) {
        if (
          typeof locations !== 'object' ||
          locations === null ||
          !Object.values(locations).every((value) => typeof value === 'string')
        ) {
          throw new Error('not a store');
        }
      }
      return parsed as StoreFile;
    } catch {
      throw new ConfigError(
        'SHIFTER_CONFIG_INVALID',
        `${this.path} is not a shifterimg login store: remove it and log in again`,
        {
          details: { path: this.path },
        },
      );
    }
  }

  async #write(store: StoreFile): Promise<void> {
    const temporary = join(this.directory, `.${CREDENTIAL_FILE}.${randomBytes(6).toString('hex')}`);
    // O_EXCL|O_NOFOLLOW: never write through a planted file or symlink; mode 0600 from creation, not after.
    const handle = await open(
      temporary,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      await handle.writeFile(`${JSON.stringify(store, null, 2)}\n`);
      await handle.sync();
      await handle.close();
      await rename(temporary, this.path);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(temporary, { force: true });
      throw ioError(`cannot write ${this.path}`, error);
    }
  }
}

function ioError(message: string, cause: unknown): ShifterError {
  const code = (cause as NodeJS.ErrnoException).code;
  return new ShifterError('SHIFTER_IO_FAILED', `${message}${code ? ` (${code})` : ''}`, { cause });
}
