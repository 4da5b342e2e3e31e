/**
 * Slurm plugin cost (`bench/slurm`): a real single-node Slurm (scripts/lib/slurm-node.sh) with the runtime, the plugin
 * and the real gateway, against the same Slurm without the plugin, in the same run:
 *
 * - submission: `sbatch --wrap true` with no plugin in plugstack.conf, with the plugin but no --image, and with
 *   `--image=docker:…` (validation + one gateway lookup as the user); interleaved run by run; wall time of `sbatch`
 *   (it returns once the job is queued).
 * - steps inside one allocation: `srun /bin/true` and `srun shifter /bin/true` interleaved inside
 *   `salloc --image=…` (the step reuses the prolog's root), and `srun /bin/true` inside a plain `salloc` after slurmd
 *   was restarted without the plugin; wall time of each `srun`, measured by bash inside the allocation.
 *
 * Run as root after `scripts/test-harness.sh start`: `bash bench/slurm/run.sh [runs]`. Prints medians and ratios and
 * writes the raw numbers to bench/out/slurm.json.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GatewayClient } from '@shifter/core';
import { freePort } from '@shifter/core/testing';
import { RuntimeEnv, run } from '../../packages/udiroot-native/test/integration/runtime-env.js';

const runs = Number(process.argv[2] ?? 20);
const user = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
const registry = process.env.SHIFTER_TEST_REGISTRY;
const munge = process.env.SHIFTER_TEST_MUNGE_SOCKET ?? '/run/munge/munge.socket.2';
if (!registry) throw new Error('SHIFTER_TEST_REGISTRY is not set (source .state/harness.env)');
if (process.getuid?.() !== 0) throw new Error('run as root');
const slurmNode = fileURLToPath(new URL('../../scripts/lib/slurm-node.sh', import.meta.url));
const gatewayBin = fileURLToPath(new URL('../../packages/gateway/bin/shifter-gateway.js', import.meta.url));
const execFileAsync = promisify(execFile);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const env = new RuntimeEnv();
const slurmDir = join(env.dir, 'slurm');
const plugin = join(env.dir, 'lib', 'shifter', 'shifter_spank.so');
let gateway: ChildProcess | undefined;
try {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const state = join(env.dir, 'gateway');
  mkdirSync(state, { recursive: true, mode: 0o700 });
  writeFileSync(
    join(state, 'gateway.json'),
    JSON.stringify({
      gateway: { host: '127.0.0.1', port },
      storage: { cacheDir: join(state, 'cache'), expandDir: join(state, 'expand') },
      systems: {
        bench: { transfer: { kind: 'local', imageDir: env.imagePath }, mungeSocketPath: munge, admins: ['root'] },
      },
      metadata: { kind: 'sqlite', path: join(state, 'gateway.db') },
      queue: { kind: 'in-process', concurrency: 2 },
      logLevel: 'warn',
    }),
  );
  gateway = spawn(process.execPath, [gatewayBin, 'serve', '--config', join(state, 'gateway.json')], {
    env: { ...process.env, SHIFTER_GATEWAY_FROM_SOURCE: '1' },
    stdio: 'ignore',
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/api/status`)).ok) break;
    } catch {
      if (i > 300) throw new Error('gateway did not start');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  env.writeConf(`imageGateway=${url}\nsystem=bench\ndefaultImageType=docker\n`);
  const tag = `${registry}/test/busybox:latest`;
  const client = new GatewayClient({
    urls: [url],
    system: 'bench',
    timeoutMs: 300_000,
    authenticate: async (payload) =>
      (
        await execFileAsync('runuser', [
          '-u',
          user,
          '--',
          'munge',
          '--socket',
          munge,
          ...(payload ? ['--string', payload] : ['--no-input']),
        ])
      ).stdout.trim(),
  });
  const image = await client.pullAndWait('docker', tag);
  if (image.status !== 'READY') throw new Error(`pull failed: ${JSON.stringify(image)}`);

  execFileSync(
    slurmNode,
    ['start', slurmDir, String(await freePort()), String(await freePort()), `required ${plugin}`],
    { stdio: 'inherit' },
  );
  const work = join(env.dir, 'work');
  mkdirSync(work, { mode: 0o1777 });
  execFileSync('chmod', ['1777', work]);
  const asUser = (program: string, args: string[]) =>
    run(
      'runuser',
      [
        '-u',
        user,
        '--',
        'env',
        '-i',
        `PATH=${env.dir}/bin:/usr/bin:/bin`,
        `SLURM_CONF=${slurmDir}/slurm.conf`,
        'HOME=/tmp',
        program,
        ...args,
      ],
      { cwd: work },
    );
  const plugstack = (line: string) => {
    writeFileSync(join(slurmDir, 'plugstack.conf.new'), `${line}\n`, { mode: 0o644 });
    renameSync(join(slurmDir, 'plugstack.conf.new'), join(slurmDir, 'plugstack.conf'));
  };

  // Submission, interleaved. The client reads plugstack.conf at every call, so swapping it changes what sbatch loads.
  const submit: Record<string, number[]> = {
    'no plugin': [],
    'plugin, no --image': [],
    'plugin, --image=docker:…': [],
  };
  const variants: [string, string, string[]][] = [
    ['no plugin', '', []],
    ['plugin, no --image', `required ${plugin}`, []],
    ['plugin, --image=docker:…', `required ${plugin}`, [`--image=docker:${tag}`]],
  ];
  for (let i = 0; i < runs; i++) {
    for (const [name, line, extra] of variants) {
      plugstack(line);
      const r = await asUser('sbatch', ['-o', '/dev/null', ...extra, '--wrap', 'true']);
      if (r.status !== 0) throw new Error(`sbatch (${name}) failed: ${r.stderr}`);
      submit[name]!.push(r.ms);
    }
  }
  plugstack(`required ${plugin}`);
  for (let i = 0; i < 600; i++) {
    if (!(await asUser('squeue', ['-h'])).stdout.trim()) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  // Steps inside an allocation: bash measures each srun. slurmd loads plugstack.conf only at start, so the
  // no-plugin phase needs a slurmd restart: the two phases alternate three times to spread drift over both.
  const settle = async () => {
    for (let i = 0; i < 600; i++) {
      if (!(await asUser('squeue', ['-h'])).stdout.trim()) {
        const st = (await asUser('sinfo', ['-h', '-o', '%T'])).stdout.trim();
        if (st === 'idle') return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const loop = (n: number, body: string) => `for i in $(seq ${n}); do ${body} done`;
  const timed = (label: string, cmd: string) =>
    `s=$EPOCHREALTIME; ${cmd} >/dev/null || exit 1; e=$EPOCHREALTIME; echo "${label} $s $e";`;
  const per = Math.max(1, Math.ceil(runs / 3));
  let stepOutput = '';
  for (let round = 0; round < 3; round++) {
    const withImage = await asUser('salloc', [
      `--image=docker:${tag}`,
      'bash',
      '-c',
      loop(per, timed('srun', 'srun /bin/true') + timed('shifter', 'srun shifter /bin/true')),
    ]);
    if (withImage.status !== 0) throw new Error(`salloc --image failed: ${withImage.stderr}`);
    await settle(); // the epilog has run
    plugstack('');
    execFileSync(slurmNode, ['restart-slurmd', slurmDir, ''], { stdio: 'inherit' });
    const without = await asUser('salloc', ['bash', '-c', loop(per, timed('plain', 'srun /bin/true'))]);
    if (without.status !== 0) throw new Error(`salloc without the plugin failed: ${without.stderr}`);
    await settle();
    execFileSync(slurmNode, ['restart-slurmd', slurmDir, `required ${plugin}`], { stdio: 'inherit' });
    stepOutput += withImage.stdout + without.stdout;
  }
  const steps: Record<string, number[]> = {
    'srun /bin/true, no plugin': [],
    'srun /bin/true, plugin + --image': [],
    'srun shifter /bin/true, plugin + --image': [],
  };
  for (const line of stepOutput.split('\n')) {
    const [label, s, e] = line.split(' ');
    if (!label || !s || !e) continue;
    const ms = (Number(e) - Number(s)) * 1000;
    if (label === 'plain') steps['srun /bin/true, no plugin']!.push(ms);
    if (label === 'srun') steps['srun /bin/true, plugin + --image']!.push(ms);
    if (label === 'shifter') steps['srun shifter /bin/true, plugin + --image']!.push(ms);
  }

  const sub = Object.fromEntries(Object.entries(submit).map(([k, v]) => [k, median(v)]));
  const st = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, median(v)]));
  const base = sub['no plugin']!;
  console.log(`sbatch submission, ${runs} runs per variant, median ms (× no plugin)`);
  for (const [k, v] of Object.entries(sub))
    console.log(`  ${k.padEnd(36)} ${v.toFixed(2).padStart(8)}  ${(v / base).toFixed(2)}×`);
  const sbase = st['srun /bin/true, no plugin']!;
  console.log(`steps inside an allocation, ${runs} runs per variant, median ms (× srun without the plugin)`);
  for (const [k, v] of Object.entries(st))
    console.log(`  ${k.padEnd(42)} ${v.toFixed(2).padStart(8)}  ${(v / sbase).toFixed(2)}×`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync(
    'bench/out/slurm.json',
    JSON.stringify({ runs, submit, steps, medians: { submit: sub, steps: st } }, null, 2),
  );
} finally {
  execFileSync(slurmNode, ['stop', slurmDir], { stdio: 'inherit' });
  if (gateway && gateway.exitCode === null) {
    const g = gateway;
    g.kill('SIGTERM');
    await new Promise((r) => g.once('exit', r));
  }
  env.cleanup();
}
