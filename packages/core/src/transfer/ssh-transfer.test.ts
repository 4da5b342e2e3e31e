import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { shellQuote, SshTransfer } from './ssh-transfer.js';

// Unit tests with a stand-in `ssh` that records its argv (the real sshd runs in the integration tests).
const ID = 'ab'.repeat(32);

describe('SshTransfer command lines', () => {
  let dir: string;
  let log: string;
  let fakeSsh: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shifter-fake-ssh-'));
    log = join(dir, 'argv.jsonl');
    fakeSsh = join(dir, 'ssh');
    // Exits 255 (connection failure) for host "down", answers "present" otherwise.
    writeFileSync(
      fakeSsh,
      `#!/usr/bin/env node\nconst fs = require('fs');\nfs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + '\\n');\n` +
        `if (process.argv.some((a) => a.endsWith('@down'))) { process.stderr.write('ssh: connect to host down: Connection refused\\n'); process.exit(255); }\n` +
        `process.stdout.write('present\\n');\n`,
    );
    chmodSync(fakeSsh, 0o755);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const calls = (): string[][] =>
    readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[]);

  it('runs ssh in batch mode with strict host keys, the key, the port, and a quoted remote script', async () => {
    const transfer = new SshTransfer({
      host: 'login1',
      username: 'shifter',
      key: '/etc/shifter/id_ed25519',
      knownHostsFile: '/etc/shifter/known_hosts',
      imageDir: '/global/images',
      port: 2222,
      sshOptions: ['-o', 'ControlMaster=no'],
      sshPath: fakeSsh,
    });
    expect(await transfer.exists(ID)).toBe(true);
    const [argv] = calls();
    const options = (name: string): boolean => argv!.some((a, i) => argv![i - 1] === '-o' && a === name);
    expect(options('BatchMode=yes')).toBe(true);
    expect(options('StrictHostKeyChecking=yes')).toBe(true);
    expect(options('UserKnownHostsFile=/etc/shifter/known_hosts')).toBe(true);
    expect(options('GlobalKnownHostsFile=/dev/null')).toBe(true);
    expect(options('ControlMaster=no')).toBe(true);
    expect(argv).toContain('/etc/shifter/id_ed25519');
    expect(argv!.slice(argv!.indexOf('-p'), argv!.indexOf('-p') + 2)).toEqual(['-p', '2222']);
    const destination = argv!.indexOf('shifter@login1');
    expect(destination).toBe(argv!.length - 2);
    expect(argv!.at(-1)).toContain(`'/global/images/${ID}.squashfs'`);
    expect(argv!.at(-1)).toContain(`'/global/images/${ID}.meta'`);
  });

  it('tries the next host when ssh cannot connect', async () => {
    const transfer = new SshTransfer({
      host: ['down', 'up'],
      username: 'shifter',
      knownHostsFile: '/k',
      imageDir: '/images',
      sshPath: fakeSsh,
    });
    expect(await transfer.exists(ID)).toBe(true);
    expect(calls().map((argv) => argv.find((a) => a.includes('@')))).toEqual(['shifter@down', 'shifter@up']);
  });

  it('reports SHIFTER_TRANSFER_FAILED when no host answers, and SHIFTER_TOOL_NOT_FOUND without ssh', async () => {
    const down = new SshTransfer({
      host: 'down',
      username: 'u',
      knownHostsFile: '/k',
      imageDir: '/images',
      sshPath: fakeSsh,
    });
    await expect(down.exists(ID)).rejects.toMatchObject({
      code: 'SHIFTER_TRANSFER_FAILED',
      details: { exitCode: 255 },
    });
    const missing = new SshTransfer({
      host: 'h',
      username: 'u',
      knownHostsFile: '/k',
      imageDir: '/images',
      sshPath: join(dir, 'nope'),
    });
    await expect(missing.exists(ID)).rejects.toMatchObject({ code: 'SHIFTER_TOOL_NOT_FOUND' });
  });

  it('refuses unsafe configuration', () => {
    const base = { host: 'h', username: 'u', knownHostsFile: '/k', imageDir: '/images' };
    for (const bad of [
      { host: '-oProxyCommand=x' },
      { host: [] as string[] },
      { username: 'a b' },
      { username: '-l' },
      { key: 'relative/key' },
      { knownHostsFile: 'known_hosts' },
      { imageDir: '/images/$(id)' },
      { port: 70000 },
    ]) {
      expect(() => new SshTransfer({ ...base, ...bad })).toThrowError(
        expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }),
      );
    }
  });
});

describe('shellQuote', () => {
  it('single-quotes words, including embedded quotes', () => {
    expect(shellQuote('plain')).toBe(`'plain'`);
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`);
    expect(shellQuote('$(id) `x` "y"')).toBe(`'$(id) \`x\` "y"'`);
  });
});
