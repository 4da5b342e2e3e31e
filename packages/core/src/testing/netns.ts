import { freePort } from './free-port.js';
/**
 * Test helpers for the distributed set-ups: a real OpenSSH server with throw-away keys, optionally inside a network
 * namespace joined to the host by a veth pair. Root only (tests gate them with `haveRoot()`).
 *
 * Addresses are taken from 10.200.0.0/16 and exist only on the veth pair created here, so traffic never leaves the
 * machine. Namespaces share the host's file system: a directory written over ssh in the namespace can be inspected
 * directly from the test.
 *
 * @example
 * ```ts
 * const ns = await createNetworkNamespace();
 * const sshd = await startSshServer({ netns: ns });
 * const transfer = new SshTransfer({ host: sshd.host, port: sshd.port, username: sshd.username,
 *   key: sshd.keyFile, knownHostsFile: sshd.knownHostsFile, imageDir });
 * …
 * await sshd.stop();
 * await ns.remove();
 * ```
 *
 * @packageDocumentation
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A network namespace joined to the host by a veth pair (a /30 link). */
export interface NetworkNamespace {
  /** Namespace name (for `ip netns exec`). */
  readonly name: string;
  /** The host's address on the link: bind services here to make them reachable from the namespace only. */
  readonly hostAddress: string;
  /** The namespace's own address on the link. */
  readonly address: string;
  /** Host-side interface name. */
  readonly hostInterface: string;
  /** Run a command inside the namespace and collect its output. */
  exec(command: string, args?: readonly string[]): Promise<{ stdout: string; stderr: string }>;
  /** Spawn a long-running command inside the namespace. */
  spawn(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Delete the namespace and its link (processes still inside keep running; stop them first). Idempotent. */
  remove(): Promise<void>;
}

/**
 * Create a namespace `shifter-<random>` with loopback up and a veth link `10.200.x.y/30` to the host.
 * @throws Error when `ip` fails (not root, no netns support).
 */
export async function createNetworkNamespace(): Promise<NetworkNamespace> {
  const tag = randomBytes(3).toString('hex');
  const name = `shifter-${tag}`;
  const hostInterface = `shv${tag}h`;
  const nsInterface = `shv${tag}n`;
  const block = randomBytes(2).readUInt16BE(0) % 16384; // 16384 /30 blocks in 10.200.0.0/16
  const base = block * 4;
  const hostAddress = `10.200.${base >> 8}.${(base & 255) + 1}`;
  const address = `10.200.${base >> 8}.${(base & 255) + 2}`;
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await run('ip', ['link', 'del', hostInterface]).catch(() => undefined);
    await run('ip', ['netns', 'del', name]).catch(() => undefined);
  };
  try {
    await run('ip', ['netns', 'add', name]);
    await run('ip', ['link', 'add', hostInterface, 'type', 'veth', 'peer', 'name', nsInterface]);
    await run('ip', ['link', 'set', nsInterface, 'netns', name]);
    await run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostInterface]);
    await run('ip', ['link', 'set', hostInterface, 'up']);
    await run('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', `${address}/30`, 'dev', nsInterface]);
    await run('ip', ['netns', 'exec', name, 'ip', 'link', 'set', nsInterface, 'up']);
    await run('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    name,
    hostAddress,
    address,
    hostInterface,
    exec: async (command, args = []) => run('ip', ['netns', 'exec', name, command, ...args]),
    spawn: (command, args = [], options = {}) => spawn('ip', ['netns', 'exec', name, command, ...args], options),
    remove,
  };
}

/** A running sshd and what a client needs to reach it. */
export interface SshServer {
  /** Address sshd listens on. */
  readonly host: string;
  /** Port sshd listens on. */
  readonly port: number;
  /** User that may log in (root: the key in {@link SshServer.keyFile} is authorised for it). */
  readonly username: string;
  /** Private key of the client (ed25519, no passphrase). */
  readonly keyFile: string;
  /** known_hosts file with the server's host key for `[host]:port`. */
  readonly knownHostsFile: string;
  /** Directory holding the keys and config. */
  readonly dir: string;
  /** sshd's pid. */
  readonly pid: number;
  /** Stop sshd and delete its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startSshServer}. */
export interface StartSshServerOptions {
  /** Run sshd inside this namespace, listening on its address (default: on 127.0.0.1 in the host namespace). */
  readonly netns?: NetworkNamespace;
  /** Port (default: a free one). */
  readonly port?: number;
}

/**
 * Start Debian's OpenSSH server with a generated host key, authorising a generated client key for root. Public-key
 * authentication only, no PAM, loopback or namespace address only.
 * @throws Error when sshd does not come up within 10 s.
 */
export async function startSshServer(options: StartSshServerOptions = {}): Promise<SshServer> {
  const dir = mkdtempSync(join(tmpdir(), 'shifter-sshd-'));
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const host = options.netns?.address ?? '127.0.0.1';
  const port = options.port ?? (await freePort());
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[${host}]:${port} ${hostKey}\n`);
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      `ListenAddress ${host}`,
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      // Cheaper key exchange than the post-quantum default: these servers live for one test run on loopback.
      'KexAlgorithms curve25519-sha256',
      '',
    ].join('\n'),
  );
  const args = ['-D', '-e', '-f', join(dir, 'sshd_config')];
  const child = options.netns
    ? options.netns.spawn('/usr/sbin/sshd', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('/usr/sbin/sshd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(host, port, options.netns, child, () => stderr);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    host,
    port,
    username: 'root',
    keyFile: join(dir, 'client_key'),
    knownHostsFile: join(dir, 'known_hosts'),
    dir,
    pid: child.pid!,
    stop,
  };
}

async function waitForPort(
  host: string,
  port: number,
  netns: NetworkNamespace | undefined,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${stderr()}`);
    // From the host, the namespace's address is reachable over the veth link, so a plain connect works for both.
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline)
      throw new Error(`sshd did not listen on ${host}:${port}${netns ? ` in ${netns.name}` : ''}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
