/**
 * The Slurm plugin on a real single-node Slurm 22.05 (Debian's slurmctld + slurmd, scripts/lib/slurm-node.sh) with
 * the real gateway, munged, the test registry and the runtime and plugin installed by `make install`. Every job is
 * submitted by an unprivileged user (shiftertest; shiftertest2 for the node-sharing case), and every row of the
 * failure table in docs/slurm.md is exercised.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '@shifter/core';
import { freePort, haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import {
  RuntimeEnv,
  run,
  type RunResult,
  credentialOf,
  startRuntimeGateway,
  type RuntimeGateway,
} from './runtime-env.js';

const execFileAsync = promisify(execFile);
const slurmNode = fileURLToPath(new URL('../../../../scripts/lib/slurm-node.sh', import.meta.url));
const system = 'testsys';

/** Debian's Slurm daemons are installed by scripts/test-harness.sh; under CI=true their absence is a failure. */
function haveSlurm(): boolean {
  const ok = ['slurmctld', 'slurmd', 'sbatch'].every((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status === 0);
  if (ok) return true;
  if (process.env.CI === 'true') throw new Error('Slurm is not installed (run scripts/test-harness.sh install)');
  console.warn('SKIPPING Slurm integration tests: slurmctld/slurmd/sbatch not installed');
  return false;
}

const enabled = haveRoot() && haveServices('user', 'registry', 'munge') && haveSlurm();

describe.skipIf(!enabled)('Slurm SPANK plugin on a real Slurm', () => {
  let env: RuntimeEnv;
  let gateway: RuntimeGateway | undefined;
  const gatewayLog = () => gateway?.log() ?? '';
  let gatewayPort: number;
  let url: string;
  let user: string;
  let user2: string;
  let slurmDir: string;
  let plugin: string;
  let debianTag: string;
  let busyboxTag: string;
  let debianId: string;
  let busyboxId: string;
  let work: string;

  const client = (as: string) =>
    new GatewayClient({
      urls: [url],
      system,
      timeoutMs: 300_000,
      authenticate: (payload) => credentialOf(as, payload || undefined),
    });

  /** Run a Slurm command (or any program) as `as` with this Slurm's SLURM_CONF and the installed runtime on PATH. */
  const slurm = (as: string, program: string, args: string[], extra: Record<string, string> = {}): Promise<RunResult> =>
    run(
      'runuser',
      [
        '-u',
        as,
        '--',
        'env',
        '-i',
        `PATH=${env.dir}/bin:/usr/bin:/bin`,
        `SLURM_CONF=${slurmDir}/slurm.conf`,
        `HOME=/tmp`,
        ...Object.entries(extra).map(([k, v]) => `${k}=${v}`),
        program,
        ...args,
      ],
      { cwd: work },
    );

  /** `sbatch --wait` as `as`; returns the submission result and the job's output file. */
  async function batch(as: string, args: string[]): Promise<{ r: RunResult; out: string; jobId: string }> {
    const out = join(work, `job-${Math.random().toString(36).slice(2)}.out`);
    const r = await slurm(as, 'sbatch', ['--wait', '--parsable', '-o', out, ...args]);
    const jobId = r.stdout.trim().split(';')[0] ?? '';
    return { r, out: existsSync(out) ? readFileSync(out, 'utf8') : '', jobId };
  }

  async function lookups(): Promise<number> {
    const text = await (await fetch(`${url}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith('shifter_gateway_request_duration_seconds_count{route="/api/lookup/'));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  const nodeState = () =>
    spawnSync('sinfo', ['-h', '-o', '%T'], {
      env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` },
      encoding: 'utf8',
    }).stdout.trim();
  const slurmdLog = () => readFileSync(join(slurmDir, 'log', 'slurmd.log'), 'utf8');
  const jobMounts = () => env.mounts().filter((m) => m.includes('udiMount.jobs'));
  /** Wait (at most 30 s) until no job is left on the node and it is no longer completing (epilogs done). */
  async function settle(): Promise<void> {
    for (let i = 0; i < 300; i++) {
      const q = spawnSync('squeue', ['-h'], {
        env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` },
        encoding: 'utf8',
      }).stdout.trim();
      const st = nodeState();
      if (!q && !st.startsWith('comp') && !st.startsWith('alloc') && !st.startsWith('mix')) return;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  const node = (...args: string[]) => execFileSync(slurmNode, args, { stdio: 'pipe' });

  async function startGateway(): Promise<void> {
    gateway = await startRuntimeGateway(env, system, { port: gatewayPort });
  }

  async function stopGateway(): Promise<void> {
    await gateway?.stop();
    gateway = undefined;
  }

  beforeAll(async () => {
    user = serviceValue('user');
    user2 = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    env = new RuntimeEnv();
    plugin = join(env.dir, 'lib', 'shifter', 'shifter_spank.so');
    if (!existsSync(plugin)) throw new Error(`make install did not install ${plugin} (is libslurm-dev installed?)`);
    work = join(env.dir, 'work');
    mkdirSync(work, { mode: 0o1777 });
    execFileSync('chmod', ['1777', work]);
    mkdirSync(join(env.dir, 'data'), { mode: 0o755 });
    writeFileSync(join(env.dir, 'data', 'hello.txt'), 'hello from the host\n', { mode: 0o644 });
    gatewayPort = await freePort();
    url = `http://127.0.0.1:${gatewayPort}`;
    await startGateway();
    env.writeConf(
      `imageGateway=${url}\nsystem=${system}\ndefaultImageType=docker\ngatewayTimeout=10\nmodule_hello_siteEnv=HELLO_MODULE=yes\n`,
    );
    debianTag = `${serviceValue('registry')}/test/debian:latest`;
    busyboxTag = `${serviceValue('registry')}/test/busybox:latest`;
    const debian = await client(user).pullAndWait('docker', debianTag);
    expect(debian.status, gatewayLog()).toBe('READY');
    debianId = debian.id!;
    const busybox = await client(user2).pullAndWait('docker', busyboxTag);
    expect(busybox.status, gatewayLog()).toBe('READY');
    busyboxId = busybox.id!;
    slurmDir = join(env.dir, 'slurm');
    node('start', slurmDir, String(await freePort()), String(await freePort()), `required ${plugin}`);
  }, 600_000);

  afterAll(async () => {
    if (slurmDir) spawnSync(slurmNode, ['stop', slurmDir], { stdio: 'ignore' });
    await stopGateway();
    env?.cleanup();
  });

  it('sbatch --image --wrap "srun shifter cat /etc/os-release" runs in the image, with one gateway lookup', async () => {
    const before = await lookups();
    const { r, out, jobId } = await batch(user, [
      `--image=docker:${debianTag}`,
      '--wrap',
      'srun shifter cat /etc/os-release; echo "img=$SHIFTER_IMAGE"',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(out).toContain('ID=debian');
    expect(out).toContain(`img=${debianId}`);
    expect(await lookups()).toBe(before + 1);
    expect(slurmdLog()).toContain(`shifter: job ${jobId}: container root ready`);
    await settle();
    expect(jobMounts()).toEqual([]);
    expect(env.loopDevices()).toEqual([]);
  });

  it('#SBATCH --image= in a script (examples/slurm/job.sh); plain srun steps get SHIFTER_IMAGE', async () => {
    const example = readFileSync(fileURLToPath(new URL('../../../../examples/slurm/job.sh', import.meta.url)), 'utf8');
    expect(example).toContain('#SBATCH --image=docker:debian:bookworm');
    const script = join(work, 'job.sh');
    writeFileSync(
      script,
      example.replace('#SBATCH --image=docker:debian:bookworm', `#SBATCH --image=docker:${debianTag}`) +
        `srun sh -c 'echo "step=$SHIFTER_IMAGETYPE:$SHIFTER_IMAGE"'\n`,
      { mode: 0o755 },
    );
    const before = await lookups();
    const { r, out } = await batch(user, [script]);
    expect(r.status, r.stderr).toBe(0);
    expect(out).toContain(`image id: ${debianId}`);
    expect(out).toContain('ID=debian');
    expect(out).toContain(`running in ${debianId} as ${user}`);
    expect(out).toContain(`step=id:${debianId}`);
    expect(await lookups()).toBe(before + 1);
    await settle();
    expect(jobMounts()).toEqual([]);
  });

  it('salloc --image, then two srun shifter steps reuse the prolog root (one loop device), nothing left after', async () => {
    const before = await lookups();
    const steps =
      'srun shifter -v cat /etc/debian_version 2>&1; ' + 'srun shifter -v sh -c "grep ^ID= /etc/os-release" 2>&1';
    const r = await slurm(user, 'salloc', [`--image=docker:${debianTag}`, 'sh', '-c', steps]);
    expect(r.status, r.stderr).toBe(0);
    const reuse = r.stdout.split('\n').filter((l) => l.includes('reusing the root of job'));
    expect(reuse.length, r.stdout).toBe(2);
    expect(r.stdout).toContain('ID=debian');
    expect(await lookups()).toBe(before + 1);
    await settle();
    expect(jobMounts()).toEqual([]);
    expect(env.loopDevices()).toEqual([]);
  });

  it('the loop device is counted by root while the job runs: exactly one for two steps', async () => {
    const p = slurm(user, 'salloc', [
      `--image=docker:${debianTag}`,
      'sh',
      '-c',
      'srun shifter true; srun shifter true; touch ' + join(work, 'ready') + '; sleep 3',
    ]);
    for (let i = 0; i < 200 && !existsSync(join(work, 'ready')); i++) await new Promise((res) => setTimeout(res, 100));
    const during = env.loopDevices().length;
    const mountsDuring = jobMounts().length;
    const r = await p;
    rmSync(join(work, 'ready'), { force: true });
    expect(r.status, r.stderr).toBe(0);
    expect(during).toBe(1);
    expect(mountsDuring).toBeGreaterThan(0);
    await settle();
    expect(jobMounts()).toEqual([]);
    expect(env.loopDevices()).toEqual([]);
  });

  it('--volume and --module reach the prolog root and every step', async () => {
    const { r, out } = await batch(user, [
      `--image=docker:${debianTag}`,
      `--volume=${join(env.dir, 'data')}:/data:ro`,
      '--module=hello',
      '--wrap',
      "srun shifter -v sh -c 'cat /data/hello.txt; echo mod=$HELLO_MODULE' 2>&1",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(out).toContain('hello from the host');
    expect(out).toContain('mod=yes');
    expect(out).toContain('reusing the root of job');
  });

  it('job arrays: every task gets its own root, all removed after', async () => {
    const { r, out } = await slurm(user, 'sbatch', [
      '--wait',
      '--array=1-2',
      `--image=docker:${debianTag}`,
      '-o',
      join(work, 'arr-%a.out'),
      '--wrap',
      'srun shifter -v true 2>&1',
    ]).then((x) => ({ r: x, out: '' }));
    expect(r.status, r.stderr).toBe(0);
    expect(out).toBe('');
    for (const a of [1, 2])
      expect(readFileSync(join(work, `arr-${a}.out`), 'utf8')).toContain('reusing the root of job');
    await settle();
    expect(jobMounts()).toEqual([]);
  });

  it('heterogeneous jobs (two nodes): each component gets its own root on its node, its steps reuse it', async () => {
    const hetDir = join(env.dir, 'slurm-het');
    const conf = `SLURM_CONF=${hetDir}/slurm.conf`;
    execFileSync(
      slurmNode,
      ['start', hetDir, String(await freePort()), String(await freePort()), `required ${plugin}`],
      {
        env: { ...process.env, SLURM_NODE2_NETNS: `slhet${process.pid % 10000}` },
        stdio: 'pipe',
      },
    );
    try {
      const script = join(work, 'het.sh');
      writeFileSync(
        script,
        `#!/bin/sh\n#SBATCH --image=docker:${debianTag}\n#SBATCH -n1\n#SBATCH hetjob\n#SBATCH -n1\n` +
          `srun --het-group=0,1 shifter -v sh -c 'echo "on=$SLURMD_NODENAME $(grep ^ID= /etc/os-release)"' 2>&1\n`,
        { mode: 0o755 },
      );
      const out = join(work, 'het.out');
      const before = await lookups();
      const r = await run(
        'runuser',
        [
          '-u',
          user,
          '--',
          'env',
          '-i',
          `PATH=${env.dir}/bin:/usr/bin:/bin`,
          conf,
          'HOME=/tmp',
          'sbatch',
          '--wait',
          '-o',
          out,
          script,
        ],
        { cwd: work },
      );
      const text = existsSync(out) ? readFileSync(out, 'utf8') : '';
      expect(r.status, `${r.stderr}\n${text}`).toBe(0);
      expect(text).toContain('on=n1 ID=debian');
      expect(text).toContain('on=n2 ID=debian');
      expect(text.match(/reusing the root of job \d+/g)?.length, text).toBe(2);
      expect(new Set(text.match(/reusing the root of job \d+/g)).size).toBe(2); // one root per component
      expect(await lookups()).toBe(before + 1);
      for (let i = 0; i < 300 && jobMounts().length > 0; i++) await new Promise((res) => setTimeout(res, 100));
      expect(jobMounts()).toEqual([]);
    } finally {
      execFileSync(slurmNode, ['stop', hetDir], { stdio: 'pipe' });
    }
  });

  it('failure: an unknown image fails the submission at once, no job is queued', async () => {
    const r = await slurm(user, 'sbatch', [
      `--image=docker:${serviceValue('registry')}/test/nosuch:latest`,
      '--wrap',
      'true',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('not found on the image gateway');
    expect(r.stdout).toBe('');
  });

  it('failure: a malformed volume fails the submission with the runtime message', async () => {
    const r = await slurm(user, 'sbatch', [`--image=docker:${debianTag}`, '--volume=/tmp:/etc', '--wrap', 'true']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('invalid volume');
    expect(r.stdout).toBe(''); // no "Submitted batch job"
    const s = await slurm(user, 'srun', [`--image=docker:${debianTag}`, '--volume=/tmp:/x:bogus', 'true']);
    expect(s.status).not.toBe(0);
    expect(s.stderr).toContain('invalid volume');
    const queued = spawnSync('squeue', ['-h', '-u', user], {
      env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` },
      encoding: 'utf8',
    });
    expect(queued.stdout.trim()).toBe('');
  });

  it('failure: a volume missing on the node fails the job, not the node', async () => {
    const { r, out } = await batch(user, [
      `--image=docker:${debianTag}`,
      '--volume=/nonexistent-dir:/data',
      '--wrap',
      'srun shifter true 2>&1',
    ]);
    expect(r.status).not.toBe(0);
    expect(out).toContain('/nonexistent-dir');
    await settle();
    expect(nodeState()).toBe('idle');
    await settle();
    expect(jobMounts()).toEqual([]);
  });

  it('failure: gateway down fails the submission with a clear message', async () => {
    await stopGateway();
    try {
      const r = await slurm(user, 'sbatch', [`--image=docker:${debianTag}`, '--wrap', 'true']);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('failed to look up');
      expect(r.stdout).toBe('');
    } finally {
      await startGateway();
    }
    await settle();
    expect(nodeState()).toBe('idle');
  });

  it('failure: image removed between submission and start fails the job, node stays in service', async () => {
    const copy = 'f'.repeat(64);
    env.aliasImage(debianId, copy, readFileSync(join(env.imagePath, `${debianId}.meta`), 'utf8'));
    const held = await slurm(user, 'sbatch', [
      '--hold',
      '--parsable',
      '-o',
      join(work, 'removed.out'),
      `--image=id:${copy}`,
      '--wrap',
      'srun shifter true 2>&1',
    ]);
    expect(held.status, held.stderr).toBe(0);
    const jobId = held.stdout.trim();
    rmSync(join(env.imagePath, `${copy}.meta`));
    rmSync(join(env.imagePath, `${copy}.squashfs`));
    execFileSync('scontrol', ['release', jobId], { env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` } });
    for (let i = 0; i < 300; i++) {
      const q = spawnSync('squeue', ['-h', '-j', jobId], {
        env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` },
        encoding: 'utf8',
      });
      if (!q.stdout.trim()) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(readFileSync(join(work, 'removed.out'), 'utf8')).toContain('not found');
    expect(slurmdLog()).toContain(`shifter: job ${jobId}: the container cannot be prepared`);
    await settle();
    expect(nodeState()).toBe('idle');
    await settle();
    expect(jobMounts()).toEqual([]);
  });

  it('failure: a job of root with --image is refused at submission; root jobs without it run', async () => {
    const r = await run(
      'env',
      [
        `SLURM_CONF=${slurmDir}/slurm.conf`,
        `PATH=${env.dir}/bin:/usr/bin:/bin`,
        'srun',
        `--image=docker:${debianTag}`,
        'true',
      ],
      { cwd: work },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('never run as root');
    const plain = await run('env', [`SLURM_CONF=${slurmDir}/slurm.conf`, 'srun', 'echo', 'root-ok'], { cwd: work });
    expect(plain.stdout).toBe('root-ok\n');
    await settle();
    expect(nodeState()).toBe('idle');
  });

  it('two jobs of different users and images share the node: private roots, one epilog leaves the other', async () => {
    const flag = join(work, 'second-done');
    rmSync(flag, { force: true });
    const first = batch(user, [
      `--image=docker:${debianTag}`,
      '--wrap',
      `srun shifter sh -c 'grep ^ID= /etc/os-release; ls /; while [ ! -e ${flag} ]; do sleep 0.2; done; grep ^ID= /etc/os-release'`,
    ]);
    for (let i = 0; i < 200 && jobMounts().length === 0; i++) await new Promise((res) => setTimeout(res, 100));
    // The other user cannot look into the first job's root from the host either.
    const firstRoot = join(`${env.udiMount}.jobs`, readdirSync(`${env.udiMount}.jobs`)[0]!, 'root');
    const peek = await env.runAs(user2, [join(firstRoot, 'etc')], { program: '/bin/ls' });
    expect(peek.status).not.toBe(0);
    expect(peek.stderr).toContain('Permission denied');
    const second = await batch(user2, [
      `--image=docker:${busyboxTag}`,
      '--wrap',
      `srun shifter -v sh -c 'busybox | head -1; ls /proc/1 >/dev/null; touch ${flag}' 2>&1`,
    ]);
    const a = await first;
    expect(second.r.status, second.r.stderr).toBe(0);
    expect(second.out).toContain('BusyBox');
    expect(second.out).toContain(`reusing the root of job ${second.jobId}`);
    expect(a.r.status, a.r.stderr).toBe(0);
    expect(a.out.match(/ID=debian/g)?.length).toBe(2);
    expect(busyboxId).not.toBe(debianId);
    await settle();
    expect(jobMounts()).toEqual([]);
  });

  it('a job id in the environment is not trusted: a matching root of another job is never entered', async () => {
    const flag = join(work, 'victim-go');
    rmSync(flag, { force: true });
    // The same user and image, so only the job id stands between the caller and the root: the signature matches.
    const victim = batch(user, [
      `--image=docker:${busyboxTag}`,
      '--wrap',
      `srun shifter -v true 2>&1; srun sh -c 'while [ ! -e ${flag} ]; do sleep 0.2; done'`,
    ]);
    let victimJob = '';
    for (let i = 0; i < 300 && !victimJob; i++) {
      const q = spawnSync('squeue', ['-h', '-u', user, '-t', 'R', '-o', '%i'], {
        env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` },
        encoding: 'utf8',
      });
      victimJob = q.stdout.trim();
      if (!victimJob) await new Promise((res) => setTimeout(res, 100));
    }
    expect(victimJob).toMatch(/^\d+$/);
    const forged = { SLURM_JOB_ID: victimJob, SLURM_JOBID: victimJob, SLURM_STEP_ID: '0' };
    // Outside any step, with the victim's job id in the environment.
    const direct = await env.runAs(user, ['-v', `--image=id:${busyboxId}`, 'echo', 'private'], { env: forged });
    // Inside a step of another job, with the variable overridden after Slurm set it.
    const inStep = await slurm(user, 'srun', [
      'sh',
      '-c',
      `SLURM_JOB_ID=${victimJob} SLURM_JOBID=${victimJob} shifter -v --image=id:${busyboxId} echo private 2>&1`,
    ]);
    writeFileSync(flag, '');
    const v = await victim;
    expect(v.out).toContain(`reusing the root of job ${victimJob}`); // the root was there and matched
    expect(direct.status, direct.stderr).toBe(0);
    expect(direct.stdout).toBe('private\n');
    expect(direct.stderr).not.toContain('reusing the root');
    expect(inStep.status, inStep.stderr).toBe(0);
    expect(inStep.stdout).toContain('private');
    expect(inStep.stdout).not.toContain('reusing the root');
  });

  it('failure: a broken plugstack argument is logged; jobs without --image run, --image is refused; node not drained', async () => {
    node('restart-slurmd', slurmDir, `required ${plugin} shifter_config=/nonexistent/udiRoot.conf`);
    try {
      const plain = await slurm(user, 'srun', ['echo', 'plain-ok']);
      expect(plain.stdout).toBe('plain-ok\n');
      expect(plain.stderr).toContain('shifter: plugstack.conf: shifter_config=/nonexistent/udiRoot.conf');
      expect(slurmdLog()).toContain('shifter: plugstack.conf: shifter_config=/nonexistent/udiRoot.conf');
      const withImage = await slurm(user, 'sbatch', [`--image=docker:${debianTag}`, '--wrap', 'true']);
      expect(withImage.status).not.toBe(0);
      expect(withImage.stderr).toContain('plugstack.conf arguments are broken');
      const unknown = await (async () => {
        node('restart-slurmd', slurmDir, `required ${plugin} no_such_argument=1`);
        return slurm(user, 'srun', ['echo', 'still-ok']);
      })();
      expect(unknown.stdout).toBe('still-ok\n');
      expect(unknown.stderr).toContain('unknown argument "no_such_argument=1"');
      await settle();
      await settle();
      expect(nodeState()).toBe('idle');
    } finally {
      node('restart-slurmd', slurmDir, `required ${plugin}`);
    }
  });

  it('container_aliases=1 adds --container-image and --container-mounts (off by default)', async () => {
    const off = await slurm(user, 'sbatch', [`--container-image=docker:${debianTag}`, '--wrap', 'true']);
    expect(off.status).not.toBe(0);
    node('restart-slurmd', slurmDir, `required ${plugin} container_aliases=1`);
    try {
      const before = await lookups();
      const { r, out } = await batch(user, [
        `--container-image=docker:${debianTag}`,
        `--container-mounts=${join(env.dir, 'data')}:/data:ro,${join(env.dir, 'data')}:/data2`,
        '--wrap',
        "srun shifter -v sh -c 'grep ^ID= /etc/os-release; cat /data/hello.txt /data2/hello.txt' 2>&1",
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(out).toContain('ID=debian');
      expect(out.match(/hello from the host/g)?.length).toBe(2);
      expect(out).toContain('reusing the root of job');
      expect(await lookups()).toBe(before + 1);
    } finally {
      node('restart-slurmd', slurmDir, `required ${plugin}`);
    }
  });

  it('a node that cannot build roots is drained (setupRoot missing)', async () => {
    const setup = join(env.dir, 'sbin', 'setupRoot');
    execFileSync('mv', [setup, `${setup}.away`]);
    try {
      const r = await slurm(user, 'sbatch', ['--parsable', `--image=docker:${debianTag}`, '--wrap', 'true']);
      expect(r.status, r.stderr).toBe(0);
      let state = '';
      for (let i = 0; i < 100 && !state.startsWith('drain'); i++) {
        state = nodeState();
        await new Promise((res) => setTimeout(res, 100));
      }
      expect(state).toMatch(/^drain/);
      expect(slurmdLog()).toContain('this node cannot prepare containers');
    } finally {
      execFileSync('mv', [`${setup}.away`, setup]);
      spawnSync('scancel', ['-u', user], { env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` } });
      spawnSync('scontrol', ['update', 'nodename=localhost', 'state=resume'], {
        env: { ...process.env, SLURM_CONF: `${slurmDir}/slurm.conf` },
      });
    }
  });
});
