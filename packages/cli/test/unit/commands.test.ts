import { mkdtemp, readFile, rm, stat, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { NotFoundError, AuthError, ShifterError, type GatewayImage } from '@shifter/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CliConfig } from '../../src/cli-config.js';
import { CredentialStore } from '../../src/credential-store.js';
import { formatLocalTimestamp } from '../../src/format.js';
import { type GatewayApi, useServices } from '../../src/services.js';
import { image, runCli, schemaErrors } from './helpers.js';

const settings: CliConfig = {
  file: '/etc/shifter/udiRoot.conf',
  imageGateway: ['http://gw:8000'],
  system: 'vmcluster',
  defaultImageType: 'docker',
  timeoutMs: 1000,
};

function stubClient(overrides: Partial<Record<keyof GatewayApi, (...args: never[]) => unknown>> = {}): GatewayApi {
  const notStubbed = (name: string) => () => {
    throw new Error(`${name} not expected`);
  };
  const names = ['lookup', 'pull', 'pullAndWait', 'list', 'expire', 'autoexpire', 'import', 'queue', 'status'] as const;
  return Object.fromEntries(
    names.map((name) => [name, vi.fn(overrides[name] ?? notStubbed(name))]),
  ) as unknown as GatewayApi;
}

let home: string;
let restore: () => void;
let client: GatewayApi;
let stdinText = '';

function install(overrides: Partial<Record<keyof GatewayApi, (...args: never[]) => unknown>>): GatewayApi {
  client = stubClient(overrides);
  return client;
}

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'shifterimg-home-'));
  stdinText = '';
  install({});
  restore = useServices({
    environment: () => ({ config: undefined, mungeSocket: undefined, home }),
    loadConfig: async () => settings,
    createClient: () => client,
    credentialStore: () => new CredentialStore(home),
    stdin: () => Readable.from([stdinText]),
  });
});

afterEach(async () => {
  restore();
  await rm(home, { recursive: true, force: true });
});

describe('shifterimg images', () => {
  it("prints upstream's table, one row per tag, sorted by tag", async () => {
    install({
      list: async () => [
        image({ tag: ['ubuntu:latest', 'alpine:3'] }),
        image({ id: 'b'.repeat(64), itype: 'custom', tag: ['mine:1'], last_pull: 1_700_000_000 }),
      ],
    });
    const run = await runCli(['images']);
    expect(run.exitCode).toBe(0);
    const when = formatLocalTimestamp(new Date(1_501_498_622_000));
    const later = formatLocalTimestamp(new Date(1_700_000_000_000));
    expect(run.stdout).toBe(
      `vmcluster  docker     READY    8ff7706743   ${when} alpine:3                      \n` +
        `vmcluster  custom     READY    bbbbbbbbbb   ${later} mine:1                        \n` +
        `vmcluster  docker     READY    8ff7706743   ${when} ubuntu:latest                 \n`,
    );
  });

  it('prints the typed list under --json, valid against schemas/images.json', async () => {
    install({ list: async () => [image()] });
    const run = await runCli(['images', '--json']);
    const output = JSON.parse(run.stdout);
    expect(output).toEqual({ system: 'vmcluster', images: [image()] });
    expect(schemaErrors('images', output)).toEqual([]);
  });
});

describe('shifterimg lookup', () => {
  it('prints the id only', async () => {
    install({ lookup: async () => image() });
    const run = await runCli(['lookup', 'ubuntu:latest']);
    expect(run.stdout).toBe(`${image().id}\n`);
    expect(run.stderr).toBe('');
    expect(client.lookup).toHaveBeenCalledWith('docker', 'ubuntu:latest');
  });

  it.each([
    ['docker:ubuntu:22.04', 'docker', 'ubuntu:22.04'],
    ['127.0.0.1:5000/test/busybox:latest', 'docker', '127.0.0.1:5000/test/busybox:latest'],
    ['custom:mine:1', 'custom', 'mine:1'],
  ])('splits %s into type %s and tag %s', async (argument, type, tag) => {
    install({ lookup: async () => image() });
    await runCli(['lookup', argument]);
    expect(client.lookup).toHaveBeenCalledWith(type, tag);
  });

  it('tells the user to pull a missing image and exits 66', async () => {
    install({
      lookup: async () => {
        throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', 'no such image');
      },
    });
    const run = await runCli(['lookup', 'docker:nope:1']);
    expect(run.exitCode).toBe(66);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      'SHIFTER_IMAGE_NOT_FOUND: image docker:nope:1 not found on system vmcluster: pull it with "shifterimg pull docker:nope:1"\n',
    );
  });

  it('prints the error envelope under --json, valid against schemas/error.json', async () => {
    install({
      lookup: async () => {
        throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', 'no such image');
      },
    });
    const run = await runCli(['lookup', 'nope', '--json']);
    expect(run.exitCode).toBe(66);
    const envelope = JSON.parse(run.stdout);
    expect(envelope).toMatchObject({ status: 404, error: 'SHIFTER_IMAGE_NOT_FOUND', code: 'SHIFTER_IMAGE_NOT_FOUND' });
    expect(schemaErrors('error', envelope)).toEqual([]);
    expect(run.stderr).toBe('');
  });

  it('returns the image under --json, valid against schemas/lookup.json', async () => {
    install({ lookup: async () => image() });
    const output = JSON.parse((await runCli(['lookup', 'ubuntu', '--json'])).stdout);
    expect(schemaErrors('lookup', output)).toEqual([]);
    expect(output.id).toBe(image().id);
  });

  it('refuses a malformed argument with exit 65 before calling the gateway', async () => {
    const run = await runCli(['lookup', 'docker:']);
    expect(run.exitCode).toBe(65);
    expect(run.stderr).toMatch(/^SHIFTER_REF_INVALID: /);
    expect(client.lookup).not.toHaveBeenCalled();
  });

  it('maps usage errors to SHIFTER_USAGE_INVALID_ARGUMENT and exit 64', async () => {
    const missing = await runCli(['lookup']);
    expect(missing.exitCode).toBe(64);
    expect(missing.stderr).toMatch(/^SHIFTER_USAGE_INVALID_ARGUMENT: /);
    const unknown = await runCli(['lookup', 'x', '--bogus', '--json']);
    expect(unknown.exitCode).toBe(64);
    expect(schemaErrors('error', JSON.parse(unknown.stdout))).toEqual([]);
  });

  it('exits 69 when no gateway answers', async () => {
    install({
      lookup: async () => {
        throw new ShifterError('SHIFTER_GATEWAY_UNAVAILABLE', 'no image gateway answered');
      },
    });
    const run = await runCli(['lookup', 'x']);
    expect(run.exitCode).toBe(69);
    expect(run.stderr).toBe('SHIFTER_GATEWAY_UNAVAILABLE: no image gateway answered\n');
  });

  it('exits 70 with SHIFTER_INTERNAL for an unexpected failure', async () => {
    install({
      lookup: async () => {
        throw new TypeError('boom');
      },
    });
    const run = await runCli(['lookup', 'x']);
    expect(run.exitCode).toBe(70);
    expect(run.stderr).toBe('SHIFTER_INTERNAL: boom\n');
  });
});

describe('shifterimg pull', () => {
  it('prints one upstream progress line per state change off a terminal', async () => {
    install({
      pullAndWait: async (
        _type: string,
        _tag: string,
        _options: unknown,
        wait: { onUpdate: (image: GatewayImage) => void },
      ) => {
        for (const status of ['PENDING', 'PULLING', 'PULLING', 'CONVERSION', 'READY'] as const)
          wait.onUpdate(image({ status }));
        return image();
      },
    });
    const run = await runCli(['pull', 'docker:ubuntu:latest']);
    expect(run.exitCode).toBe(0);
    const lines = run.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(4);
    expect(lines.map((line) => line.replace(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d /, ''))).toEqual([
      'Pulling Image: docker:ubuntu:latest, status: PENDING',
      'Pulling Image: docker:ubuntu:latest, status: PULLING',
      'Pulling Image: docker:ubuntu:latest, status: CONVERSION',
      'Pulling Image: docker:ubuntu:latest, status: READY',
    ]);
  });

  it('redraws one line with the progress text on a terminal', async () => {
    install({
      pullAndWait: async (
        _type: string,
        _tag: string,
        _options: unknown,
        wait: { onUpdate: (image: GatewayImage) => void },
      ) => {
        wait.onUpdate(image({ status: 'PULLING', status_message: 'layer 1/2, 1.0/3.0 MB' }));
        wait.onUpdate(image({ status: 'READY', status_message: 'Image ready' }));
        return image();
      },
    });
    const descriptor = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
    Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
    try {
      const run = await runCli(['pull', 'ubuntu']);
      expect(run.exitCode).toBe(0);
      const frames = run.stdout.split('\r\u001b[2K').filter(Boolean);
      expect(frames).toHaveLength(2);
      expect(frames[0]).toMatch(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d Pulling Image: docker:ubuntu, status: PULLING \(layer 1\/2, 1\.0\/3\.0 MB\)$/,
      );
      expect(frames[1]).toMatch(/status: READY \(Image ready\)\n$/);
    } finally {
      if (descriptor) Object.defineProperty(process.stdout, 'isTTY', descriptor);
      else delete (process.stdout as { isTTY?: boolean }).isTTY;
    }
  });

  it('prints the gateway answers on stderr with --verbose, and nothing extra without', async () => {
    install({ pull: async () => image({ status: 'PENDING' }) });
    const verbose = await runCli(['pull', 'ubuntu', '--no-wait', '-v']);
    expect(verbose.stderr).toMatch(/^pull: \{"id":/);
    const quiet = await runCli(['pull', 'ubuntu', '--no-wait']);
    expect(quiet.stderr).toBe('');
  });

  it('sends ACLs and the saved logins of this system', async () => {
    await new CredentialStore(home).save('vmcluster', 'default', 'alice', 's3:cret');
    await new CredentialStore(home).save('othersystem', 'default', 'bob', 'x');
    install({ pullAndWait: async () => image() });
    const run = await runCli([
      'pull',
      'private/busybox:latest',
      '--user',
      '1001,1002',
      '--user',
      'root',
      '--group',
      '0',
      '--json',
    ]);
    expect(run.exitCode).toBe(0);
    expect(client.pullAndWait).toHaveBeenCalledWith(
      'docker',
      'private/busybox:latest',
      { allowedUids: [1001, 1002, 0], allowedGids: [0], credentials: { default: 'alice:s3:cret' } },
      expect.any(Object),
    );
    expect(schemaErrors('pull', JSON.parse(run.stdout))).toEqual([]);
  });

  it('returns after submitting with --no-wait', async () => {
    install({ pull: async () => image({ status: 'PENDING', id: 'MISSING' }) });
    const run = await runCli(['pull', 'ubuntu', '--no-wait']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d Pulling Image: docker:ubuntu, status: PENDING\n$/);
    expect(client.pullAndWait).not.toHaveBeenCalled();
  });

  it("pullnb is upstream's single non-blocking pull: one request, its state printed, ACLs sent, --json as pull", async () => {
    install({ pull: async () => image({ status: 'PENDING', id: 'MISSING' }) });
    const run = await runCli(['pullnb', '--user', '1001', '--group', '0', 'ubuntu']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d Pulling Image: docker:ubuntu, status: PENDING\n$/);
    expect(client.pull).toHaveBeenCalledWith('docker', 'ubuntu', {
      allowedUids: [1001],
      allowedGids: [0],
      credentials: {},
    });
    expect(client.pullAndWait).not.toHaveBeenCalled();
    const json = await runCli(['pullnb', 'ubuntu', '--json']);
    expect(schemaErrors('pullnb', JSON.parse(json.stdout))).toEqual([]);
    expect((await runCli(['pullnb'])).exitCode).toBe(64);
  });

  it("exits with the failed job's catalogue code", async () => {
    install({
      pullAndWait: async () => {
        throw new ShifterError('SHIFTER_REGISTRY_MANIFEST_UNKNOWN', 'docker:ubuntu:nope: no such tag');
      },
    });
    const run = await runCli(['pull', 'ubuntu:nope']);
    expect(run.exitCode).toBe(66);
    expect(run.stderr).toContain('SHIFTER_REGISTRY_MANIFEST_UNKNOWN: docker:ubuntu:nope: no such tag');
  });

  it('refuses an unknown user name with exit 64', async () => {
    const run = await runCli(['pull', 'ubuntu', '--user', 'no-such-user-xyz']);
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toContain('unknown user "no-such-user-xyz"');
  });
});

describe('shifterimg login', () => {
  it('stores the login in a 0600 file inside a 0700 directory and never prints the password', async () => {
    stdinText = 'pa:ss word\nignored\n';
    const run = await runCli(['login', 'registry.example.org', '--username', 'alice', '--password-stdin', '--json']);
    expect(run.exitCode).toBe(0);
    const output = JSON.parse(run.stdout);
    expect(schemaErrors('login', output)).toEqual([]);
    expect(run.stdout + run.stderr).not.toContain('pa:ss word');
    const file = join(home, '.udiRoot', 'credentials.json');
    expect(output).toEqual({ system: 'vmcluster', location: 'registry.example.org', username: 'alice', file });
    expect((await stat(join(home, '.udiRoot'))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      version: 1,
      systems: { vmcluster: { 'registry.example.org': 'alice:pa:ss word' } },
    });
  });

  it('never takes the location from standard input (it holds the password)', async () => {
    stdinText = 'secret-from-stdin\n';
    const run = await runCli(['login', '--username', 'alice', '--password-stdin', '--json']);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).location).toBe('default');
    expect(run.stdout + run.stderr).not.toContain('secret-from-stdin');
  });

  it('needs --username with --password-stdin', async () => {
    const run = await runCli(['login', '--password-stdin']);
    expect(run.exitCode).toBe(64);
  });

  it('refuses to use a login store others can read', async () => {
    await new CredentialStore(home).save('vmcluster', 'default', 'alice', 'pw');
    await chmod(join(home, '.udiRoot', 'credentials.json'), 0o644);
    install({ pullAndWait: async () => image() });
    const run = await runCli(['pull', 'ubuntu']);
    expect(run.exitCode).toBe(78);
    expect(run.stderr).toMatch(/^SHIFTER_CONFIG_INSECURE: .*chmod 600/);
  });
});

describe('admin and queue commands', () => {
  it('expire prints nothing and returns the status under --json', async () => {
    install({ expire: async () => ({ status: true }) });
    const quiet = await runCli(['expire', 'docker:ubuntu:latest']);
    expect(quiet).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
    const json = JSON.parse((await runCli(['expire', 'ubuntu:latest', '--json'])).stdout);
    expect(json).toEqual({ type: 'docker', tag: 'ubuntu:latest', status: true });
    expect(schemaErrors('expire', json)).toEqual([]);
  });

  it('expire by a non-admin exits 77', async () => {
    install({
      expire: async () => {
        throw new AuthError('SHIFTER_AUTH_FORBIDDEN', 'only the administrators of vmcluster may expire images');
      },
    });
    const run = await runCli(['expire', 'ubuntu']);
    expect(run.exitCode).toBe(77);
    expect(run.stderr).toBe('SHIFTER_AUTH_FORBIDDEN: only the administrators of vmcluster may expire images\n');
  });

  it('autoexpire lists the expired ids under --json', async () => {
    install({ autoexpire: async () => ({ status: ['c'.repeat(64)] }) });
    const run = await runCli(['autoexpire', '--json']);
    const json = JSON.parse(run.stdout);
    expect(json).toEqual({ expired: ['c'.repeat(64)] });
    expect(schemaErrors('autoexpire', json)).toEqual([]);
  });

  it('import makes the path absolute and defaults to type custom', async () => {
    install({ import: async () => image({ itype: 'custom', status: 'PENDING', id: 'MISSING' }) });
    const run = await runCli(['import', 'img.squashfs', 'mine:1', '--group', '100']);
    expect(run.exitCode).toBe(0);
    expect(client.import).toHaveBeenCalledWith('custom', 'mine:1', {
      filepath: join(process.cwd(), 'img.squashfs'),
      allowedUids: [],
      allowedGids: [100],
    });
    expect(run.stdout).toBe('Importing Image: custom:mine:1, status: PENDING\n');
    const json = JSON.parse((await runCli(['import', '/x.sqfs', 'custom:mine:1', '--json'])).stdout);
    expect(schemaErrors('import', json)).toEqual([]);
  });

  it('queue prints one line per entry', async () => {
    install({ queue: async () => [{ status: 'PULLING', image: 'docker:ubuntu:latest', status_message: 'layer 1/3' }] });
    expect((await runCli(['queue'])).stdout).toBe('PULLING     docker:ubuntu:latest  layer 1/3\n');
    const json = JSON.parse((await runCli(['queue', '--json'])).stdout);
    expect(schemaErrors('queue', json)).toEqual([]);
  });

  it('status reports the gateway version and systems', async () => {
    install({ status: async () => ({ status: 'up', version: '0.1.0', systems: ['vmcluster'] }) });
    expect((await runCli(['status'])).stdout).toBe('up (version 0.1.0; systems: vmcluster)\n');
    const json = JSON.parse((await runCli(['status', '--json'])).stdout);
    expect(schemaErrors('status', json)).toEqual([]);
  });
});
