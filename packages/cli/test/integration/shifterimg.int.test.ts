// shifterimg against a real gateway (embedded mode: SQLite + in-process queue, `shifter-gateway serve`), real
// registries from the harness, real munged, run as two real Unix users through runuser.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schemaErrors } from '../unit/helpers.js';

const available = haveServices('registry', 'registryToken', 'munge', 'user') && haveRoot();

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const cliRoot = join(repoRoot, 'packages/cli');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

interface Actor {
  name: string;
  uid: number;
  home: string;
}

let work: string;
let gateway: ChildProcess | undefined;
let gatewayLog = '';
let gatewayUrl: string;
let configFile: string;
let cliBin: string;
let bundleImports: Record<string, { bytes: number; external: string[] }> = {};
let alice: Actor;
let bob: Actor;
const root: Actor = { name: 'root', uid: 0, home: '' };
const system = 'testsys';

function run(command: string, args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** Run the built `shifterimg` as `actor` (root runs it directly), with only the documented variables set. */
function shifterimg(actor: Actor, args: string[], options: { config?: string; stdin?: string } = {}): Promise<Result> {
  const env = {
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    HOME: actor.home || '/root',
    SHIFTER_CONFIG: options.config ?? configFile,
    SHIFTER_MUNGE_SOCKET: serviceValue('munge'),
    // Set inside every job: must change nothing.
    SHIFTER_IMAGE: 'docker:should-be-ignored',
    SHIFTER_VOLUME: '/nonexistent:/x',
  };
  const command = [process.execPath, cliBin, ...args];
  if (actor.uid === 0) return run(command[0]!, command.slice(1), env, options.stdin);
  const assignments = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  return run('runuser', ['-u', actor.name, '--', 'env', '-i', ...assignments, ...command], env, options.stdin);
}

function json(result: Result): unknown {
  try {
    return JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  }
}

async function makeActor(name: string): Promise<Actor> {
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  const home = join(work, `home-${name}`);
  await mkdir(home, { mode: 0o755 });
  await chown(home, uid, gid);
  return { name, uid, home };
}

async function waitForGateway(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (gateway?.exitCode !== null && gateway?.exitCode !== undefined)
      throw new Error(`gateway exited ${gateway.exitCode}:\n${gatewayLog}`);
    try {
      const response = await fetch(`${url}/api/status`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`gateway did not start:\n${gatewayLog}`);
}

describe.skipIf(!available)('shifterimg against a real gateway', () => {
  const plainTag = () => `${serviceValue('registry')}/test/busybox:latest`;
  const privateTag = () => `${serviceValue('registryToken')}/private/busybox:latest`;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'shifterimg-int-'));
    await chmod(work, 0o755);

    // The product as installed: the bundle, its package.json and bin/run.cjs, somewhere both test users can read.
    execFileSync('npx', ['tsup', '--metafile'], {
      cwd: cliRoot,
      stdio: 'pipe',
      env: { ...process.env, SHIFTER_CLI_METAFILE: '1' },
    });
    type Metafile = {
      outputs: Record<string, { bytes: number; imports: Array<{ path: string; external?: boolean }> }>;
    };
    const metafile: Metafile = { outputs: {} };
    for (const name of ['metafile-esm.json', 'metafile-cjs.json']) {
      Object.assign(
        metafile.outputs,
        (JSON.parse(await readFile(join(cliRoot, 'dist', name), 'utf8')) as Metafile).outputs,
      );
    }
    bundleImports = Object.fromEntries(
      ['index.js', 'fast-lookup.cjs'].map((name) => {
        const output = metafile.outputs[`dist/${name}`]!;
        return [
          name,
          {
            bytes: output.bytes,
            external: output.imports.filter((entry) => entry.external).map((entry) => entry.path),
          },
        ];
      }),
    );
    await rm(join(cliRoot, 'dist', 'metafile-esm.json'));
    await rm(join(cliRoot, 'dist', 'metafile-cjs.json'), { force: true });
    const install = join(work, 'cli');
    await mkdir(join(install, 'bin'), { recursive: true });
    await cp(join(cliRoot, 'dist'), join(install, 'dist'), { recursive: true });
    await cp(join(cliRoot, 'bin/run.cjs'), join(install, 'bin/run.cjs'));
    await cp(join(cliRoot, 'package.json'), join(install, 'package.json'));
    // core's libmunge addon, copied next to the bundle by the build when it is built (else `munge` is run).
    await cp(join(cliRoot, 'native'), join(install, 'native'), { recursive: true }).catch(() => undefined);
    execFileSync('chmod', ['-R', 'a+rX', install]);
    cliBin = join(install, 'bin/run.cjs');

    alice = await makeActor(serviceValue('user'));
    bob = await makeActor(process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2');

    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    const imageDir = join(work, 'images');
    await mkdir(imageDir, { mode: 0o755 });
    const gatewayConfig = join(work, 'gateway.json');
    await writeFile(
      gatewayConfig,
      JSON.stringify({
        gateway: { host: '127.0.0.1', port },
        storage: { cacheDir: join(work, 'cache'), expandDir: join(work, 'expand') },
        systems: {
          [system]: { transfer: { kind: 'local', imageDir }, mungeSocketPath: serviceValue('munge'), admins: ['root'] },
        },
        // The harness registry is no configured location (allowedRegistries defaults to "configured").
        allowedRegistries: 'any',
        metadata: { kind: 'sqlite', path: join(work, 'gateway.db') },
        queue: { kind: 'in-process', concurrency: 2 },
        conversion: { compression: 'gzip' },
        importUsers: 'all',
        logLevel: 'warn',
      }),
    );
    gateway = spawn(
      process.execPath,
      [join(repoRoot, 'packages/gateway/bin/shifter-gateway.js'), 'serve', '--config', gatewayConfig],
      {
        env: { ...process.env, SHIFTER_GATEWAY_FROM_SOURCE: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    gateway.stdout?.on('data', (chunk: Buffer) => (gatewayLog += chunk.toString()));
    gateway.stderr?.on('data', (chunk: Buffer) => (gatewayLog += chunk.toString()));
    await waitForGateway(gatewayUrl);

    configFile = join(work, 'udiRoot.conf');
    await writeFile(
      configFile,
      `# test site\nimageGateway=${gatewayUrl}\nsystem=${system}\ndefaultImageType=docker\ngatewayTimeout=60\n`,
    );
    await chmod(configFile, 0o644);
  });

  afterAll(async () => {
    if (gateway && gateway.exitCode === null) {
      gateway.kill('SIGTERM');
      await new Promise((resolve) => gateway?.once('exit', resolve));
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the installed bundles are self-contained: only Node built-ins are imported, fast path stays small', async () => {
    for (const [file, bundle] of Object.entries(bundleImports)) {
      const foreign = bundle.external.filter(
        (name) => !builtinModules.includes(name.replace(/^node:/, '')) && name !== 'typescript',
      );
      expect(foreign, file).toEqual([]);
    }
    expect(bundleImports['fast-lookup.cjs']!.bytes).toBeLessThan(100 * 1024);
  });

  it('status: reports the gateway and its systems', async () => {
    const text = await shifterimg(alice, ['status']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^up \(version \S+; systems: testsys\)\n$/);
    const result = await shifterimg(alice, ['status', '--json']);
    expect(schemaErrors('status', json(result))).toEqual([]);
  });

  it('pull: follows a public pull to READY with upstream progress lines, then lookup prints the id', async () => {
    const pull = await shifterimg(alice, ['pull', plainTag()]);
    expect(pull.code, `${pull.stderr}\n${gatewayLog}`).toBe(0);
    const lines = pull.stdout.trim().split('\n');
    for (const line of lines)
      expect(line).toMatch(
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d Pulling Image: docker:${plainTag().replace(/[.]/g, '\\.')}, status: [A-Z]+$`,
        ),
      );
    expect(lines.at(-1)).toMatch(/status: READY$/);

    const lookup = await shifterimg(bob, ['lookup', plainTag()]);
    expect(lookup.code, lookup.stderr).toBe(0);
    expect(lookup.stdout).toMatch(/^[0-9a-f]{64}\n$/);

    const lookupJson = json(await shifterimg(bob, ['lookup', `docker:${plainTag()}`, '--json'])) as { id: string };
    expect(schemaErrors('lookup', lookupJson)).toEqual([]);
    expect(lookupJson.id).toBe(lookup.stdout.trim());

    const pullJson = await shifterimg(alice, ['pull', plainTag(), '--json']);
    expect(pullJson.code).toBe(0);
    expect(schemaErrors('pull', json(pullJson))).toEqual([]);
  });

  it("images: lists the image in upstream's table and as JSON", async () => {
    const table = await shifterimg(bob, ['images']);
    expect(table.code, table.stderr).toBe(0);
    const row = table.stdout.split('\n').find((line) => line.includes(plainTag()));
    expect(row).toMatch(
      new RegExp(
        `^testsys    docker     READY    [0-9a-f]{10}   \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d ${plainTag().replace(/[.]/g, '\\.')}`,
      ),
    );
    const listed = json(await shifterimg(bob, ['images', '--json'])) as { images: Array<{ tag: string[] }> };
    expect(schemaErrors('images', listed)).toEqual([]);
    expect(listed.images.some((image) => image.tag.includes(plainTag()))).toBe(true);
  });

  it("accepts upstream's option order and pullnb; every usage error exits 64", async () => {
    const images = await shifterimg(bob, ['-v', 'images']);
    expect(images.code, images.stderr).toBe(0);
    expect(images.stdout).toContain(plainTag());
    expect(images.stderr).toMatch(/^list: \[/);
    const lookup = await shifterimg(bob, ['-v', 'lookup', plainTag()]);
    expect(lookup.code, lookup.stderr).toBe(0);
    expect(lookup.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const pullnb = await shifterimg(alice, ['--user', bob.name, '--group', String(bob.uid), 'pullnb', plainTag()]);
    expect(pullnb.code, pullnb.stderr).toBe(0);
    expect(pullnb.stdout).toMatch(
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d Pulling Image: docker:${plainTag().replace(/[.]/g, '\\.')}, status: [A-Z]+\n$`,
      ),
    );
    const usage: string[][] = [
      [],
      ['--user', 'alice'],
      ['fetch', 'x'],
      ['--user', bob.name, 'push', 'x'],
      ['pull'],
      ['lookup', 'a', 'b'],
      ['images', '--bogus'],
      ['--bogus', 'images'],
      ['pull', 'x', '--user'],
    ];
    for (const args of usage) {
      const result = await shifterimg(alice, args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(64);
      expect(result.stderr, args.join(' ')).toMatch(/^SHIFTER_USAGE_INVALID_ARGUMENT: /);
    }
    for (const args of [['-h'], ['help', 'pull'], ['-v', '--help']])
      expect((await shifterimg(alice, args)).code, args.join(' ')).toBe(0);
    const envelope = await shifterimg(alice, ['fetch', '--json']);
    expect(envelope.code).toBe(64);
    expect(schemaErrors('error', json(envelope))).toEqual([]);
  });

  it('lookup: a missing image exits 66 and says how to pull it; --json prints the envelope', async () => {
    const missing = await shifterimg(alice, ['lookup', 'docker:nothing/here:1']);
    expect(missing.code).toBe(66);
    expect(missing.stderr).toBe(
      `SHIFTER_IMAGE_NOT_FOUND: image docker:nothing/here:1 not found on system testsys: pull it with "shifterimg pull docker:nothing/here:1"\n`,
    );
    const envelope = await shifterimg(alice, ['lookup', 'nothing/here:1', '--json']);
    expect(envelope.code).toBe(66);
    expect(schemaErrors('error', json(envelope))).toEqual([]);
    expect(envelope.stderr).toBe('');
  });

  it('pull: a tag the registry does not have ends with the registry code and its exit code', async () => {
    const result = await shifterimg(alice, ['pull', `${serviceValue('registry')}/test/busybox:no-such-tag`, '--json']);
    expect(result.code).toBe(66);
    const envelope = json(result) as { code: string };
    expect(schemaErrors('error', envelope)).toEqual([]);
    expect(envelope.code).toBe('SHIFTER_REGISTRY_MANIFEST_UNKNOWN');
  });

  it("pull with upstream's ~/.udiRoot/.cred (no credentials.json): the munge-encoded login reaches the private registry", async () => {
    const login = `${process.env.SHIFTER_TEST_REGISTRY_USER ?? ''}:${process.env.SHIFTER_TEST_REGISTRY_PASSWORD ?? ''}`;
    // As upstream's `shifterimg login` writes it: `<system>:<location>=<munge credential of "user:password">`, made by the user.
    const credential = execFileSync(
      'runuser',
      ['-u', alice.name, '--', 'munge', '-S', serviceValue('munge'), '-s', login],
      { encoding: 'utf8' },
    ).trim();
    const directory = join(alice.home, '.udiRoot');
    await mkdir(directory, { mode: 0o700 });
    await writeFile(join(directory, '.cred'), `${system}:default=${credential}\n`, { mode: 0o600 });
    execFileSync('chown', ['-R', `${alice.uid}`, directory]);
    const pull = await shifterimg(alice, ['-v', 'pull', privateTag()]);
    expect(pull.code, `${pull.stdout}${pull.stderr}\n${gatewayLog}`).toBe(0);
    expect(pull.stdout.trim().split('\n').at(-1)).toMatch(/status: READY$/);
    // The private tag is alice's; its content is byte-identical to the public test/busybox, so the file (and the
    // answer's ACL) may be public, but the tag itself stays hidden from bob (access per tag).
    const own = json(await shifterimg(alice, ['lookup', privateTag(), '--json'])) as { tag: string[] };
    expect(own.tag.some((tag) => tag.includes('private/busybox'))).toBe(true);
    expect((await shifterimg(bob, ['lookup', privateTag()])).code).toBe(66);
  });

  it('login + pull: a private image is seen by the user who pulled it and the users they named, not by others', async () => {
    const login = await shifterimg(
      alice,
      ['login', '--username', process.env.SHIFTER_TEST_REGISTRY_USER ?? '', '--password-stdin', '--json'],
      {
        stdin: `${process.env.SHIFTER_TEST_REGISTRY_PASSWORD ?? ''}\n`,
      },
    );
    expect(login.code, login.stderr).toBe(0);
    const saved = json(login) as { file: string };
    expect(schemaErrors('login', saved)).toEqual([]);
    expect(saved.file).toBe(join(alice.home, '.udiRoot', 'credentials.json'));
    const mode = execFileSync('stat', ['-c', '%a %u', saved.file, join(alice.home, '.udiRoot')], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(mode).toEqual([`600 ${alice.uid}`, `700 ${alice.uid}`]);

    const pull = await shifterimg(alice, ['pull', privateTag()]);
    expect(pull.code, `${pull.stdout}${pull.stderr}\n${gatewayLog}`).toBe(0);

    const own = await shifterimg(alice, ['lookup', privateTag()]);
    expect(own.code, own.stderr).toBe(0);
    expect(own.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const other = await shifterimg(bob, ['lookup', privateTag()]);
    expect(other.code).toBe(66);
    expect(other.stderr).toMatch(/^SHIFTER_IMAGE_NOT_FOUND: /);
    const bobImages = json(await shifterimg(bob, ['images', '--json'])) as { images: Array<{ tag: string[] }> };
    expect(bobImages.images.some((image) => image.tag.includes(privateTag()))).toBe(false);
    const aliceImages = json(await shifterimg(alice, ['images', '--json'])) as {
      images: Array<{ tag: string[]; userACL: number[] }>;
    };
    const privateImage = aliceImages.images.find((image) => image.tag.includes(privateTag()));
    // private/busybox on the token registry is byte-identical to the public test/busybox pulled above: one image, each
    // tag with its own access. Alice sees both tags, and the image is public because the public tag proved its content;
    // bob sees the public tag only (checked above).
    expect(privateImage?.tag).toEqual(expect.arrayContaining([plainTag(), privateTag()]));
    expect(privateImage?.userACL).toEqual([]);

    // Naming the other user (by name) on a new pull opens the image to them.
    const share = await shifterimg(alice, ['pull', privateTag(), '--user', bob.name]);
    expect(share.code, share.stderr).toBe(0);
    const shared = await shifterimg(bob, ['lookup', privateTag()]);
    expect(shared.code, shared.stderr).toBe(0);
    expect(shared.stdout).toBe(own.stdout);

    // A third user, neither logged in nor named, cannot get it: the gateway must go to the registry for them, and
    // the registry refuses. (Checked last: the gateway shows a failed pull of a tag to every poller for a while,
    // which would hold up the pulls above.)
    const stranger = await makeActor('nobody');
    const anonymous = await shifterimg(stranger, ['pull', privateTag()]);
    expect(anonymous.code, anonymous.stdout + anonymous.stderr).toBe(77);
    expect(anonymous.stderr).toMatch(/^SHIFTER_REGISTRY_(AUTH_FAILED|DENIED): /m);
  });

  it('login: prompts on the terminal, echoes the user name but not the password', async () => {
    // script(1) gives the command a pseudo-terminal; the answers are typed into it with pauses, as a user would.
    const command = [process.execPath, cliBin, 'login', 'ptyreg'].join(' ');
    const env = {
      PATH: '/usr/bin:/bin',
      HOME: alice.home,
      SHIFTER_CONFIG: configFile,
      SHIFTER_MUNGE_SOCKET: serviceValue('munge'),
    };
    const assignments = Object.entries(env).map(([key, value]) => `${key}=${value}`);
    const typed = spawn(
      'runuser',
      ['-u', alice.name, '--', 'env', '-i', ...assignments, 'script', '-qec', command, '/dev/null'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let screen = '';
    typed.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
    const waitFor = async (text: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!screen.includes(text)) {
        if (Date.now() > deadline) throw new Error(`prompt "${text}" never appeared: ${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await waitFor('ptyreg username: ');
    typed.stdin.write('pty-user\r');
    await waitFor('ptyreg password: ');
    typed.stdin.write('pty-secret-42\r');
    const code = await new Promise<number | null>((resolve) => typed.on('close', resolve));
    typed.stdin.end();
    expect(code, screen).toBe(0);
    expect(screen).toContain('pty-user');
    expect(screen).not.toContain('pty-secret-42');
    const store = JSON.parse(
      execFileSync('cat', [join(alice.home, '.udiRoot', 'credentials.json')], { encoding: 'utf8' }),
    );
    expect(store.systems[system].ptyreg).toBe('pty-user:pty-secret-42');
  });

  it('import: registers a squashfs file and it becomes READY', async () => {
    const tree = join(work, 'import-tree');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'hello'), 'hello from an import\n');
    const file = join(work, 'imported.squashfs');
    execFileSync('mksquashfs', [tree, file, '-noappend', '-quiet', '-no-progress', '-all-root', '-no-xattrs']);
    await chmod(file, 0o644);
    const result = await shifterimg(alice, ['import', file, 'imported:1', '--json']);
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0);
    expect(schemaErrors('import', json(result))).toEqual([]);
    const deadline = Date.now() + 60_000;
    let lookup: Result;
    do {
      lookup = await shifterimg(alice, ['lookup', 'custom:imported:1']);
      if (lookup.code === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 300));
    } while (Date.now() < deadline);
    expect(lookup.code, `${lookup.stderr}\n${gatewayLog}`).toBe(0);
    expect(lookup.stdout).toMatch(/^[0-9a-f]{64}\n$/);
  });

  it('queue: shows work in progress as text and valid JSON', async () => {
    const submit = await shifterimg(alice, ['pull', `${serviceValue('registry')}/test/whiteout:latest`, '--no-wait']);
    expect(submit.code, submit.stderr).toBe(0);
    expect(submit.stdout).toMatch(/Pulling Image: docker:.*whiteout:latest, status: [A-Z]+\n$/);
    const queue = await shifterimg(alice, ['queue', '--json']);
    expect(queue.code, queue.stderr).toBe(0);
    expect(schemaErrors('queue', json(queue))).toEqual([]);
    const text = await shifterimg(alice, ['queue']);
    expect(text.code).toBe(0);
    for (const line of text.stdout.split('\n').filter(Boolean)) expect(line).toMatch(/^[A-Z]+ +\S+/);
  });

  it('failover: a dead gateway URL before a live one does not fail any request; all dead exits 69', async () => {
    const dead = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    const failoverConfig = join(work, 'failover.conf');
    await writeFile(
      failoverConfig,
      `imageGateway=${dead[0]} ${gatewayUrl} \\\n  ${dead[1]}\nsystem=${system}\ngatewayTimeout=10\n`,
    );
    await chmod(failoverConfig, 0o644);
    for (let attempt = 0; attempt < 4; attempt++) {
      const result = await shifterimg(alice, ['lookup', plainTag()], { config: failoverConfig });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    }
    const allDeadConfig = join(work, 'dead.conf');
    await writeFile(allDeadConfig, `imageGateway=${dead.join(' ')}\nsystem=${system}\n`);
    await chmod(allDeadConfig, 0o644);
    const down = await shifterimg(alice, ['lookup', plainTag(), '--json'], { config: allDeadConfig });
    expect(down.code).toBe(69);
    const envelope = json(down) as { code: string; details: { attempts: unknown[] } };
    expect(schemaErrors('error', envelope)).toEqual([]);
    expect(envelope.code).toBe('SHIFTER_GATEWAY_UNAVAILABLE');
    expect(envelope.details.attempts).toHaveLength(2);
  });

  it('expire and autoexpire: administrators only', async () => {
    const denied = await shifterimg(alice, ['expire', plainTag()]);
    expect(denied.code).toBe(77);
    expect(denied.stderr).toMatch(/^SHIFTER_AUTH_FORBIDDEN: /);
    const autoDenied = await shifterimg(bob, ['autoexpire']);
    expect(autoDenied.code).toBe(77);

    const auto = await shifterimg(root, ['autoexpire', '--json']);
    expect(auto.code, auto.stderr).toBe(0);
    expect(schemaErrors('autoexpire', json(auto))).toEqual([]);

    const expire = await shifterimg(root, ['expire', plainTag()]);
    expect(expire).toMatchObject({ code: 0, stdout: '' });
    const expired = json(await shifterimg(root, ['expire', 'custom:imported:1', '--json']));
    expect(schemaErrors('expire', expired)).toEqual([]);
    expect(expired).toEqual({ type: 'custom', tag: 'imported:1', status: true });
    // Expiry runs in the background; the image disappears from lookups.
    const deadline = Date.now() + 30_000;
    let gone: Result;
    do {
      gone = await shifterimg(alice, ['lookup', 'custom:imported:1']);
      if (gone.code === 66) break;
      await new Promise((resolve) => setTimeout(resolve, 300));
    } while (Date.now() < deadline);
    expect(gone.code).toBe(66);
  });

  it('a configuration problem exits 78 before any request', async () => {
    const result = await shifterimg(alice, ['images'], { config: join(work, 'no-such.conf') });
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/^SHIFTER_CONFIG_NOT_FOUND: /);
  });
});
