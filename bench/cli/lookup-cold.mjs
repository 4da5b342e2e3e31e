#!/usr/bin/env node
// Cold-process wall time of `shifterimg lookup` against `curl` doing the same request (same gateway, same image,
// a fresh munge credential each time), measured in the same run, interleaved so both see the same machine load.
//
//   node bench/cli/lookup-cold.mjs [--runs N] [--gateway URL --system NAME --tag TAG]
//
// Without --gateway it starts the real gateway in embedded mode (`shifter-gateway serve`, SQLite, in-process
// queue) on a loopback port, pulls $SHIFTER_TEST_REGISTRY/test/busybox:latest with shifterimg, and measures lookups
// of that image. Needs munged (SHIFTER_TEST_MUNGE_SOCKET or munge's default socket), curl and a built CLI
// (npm run build -w @shifter/cli). Prints a table and writes bench/out/cli-lookup.json.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    gateway: { type: 'string' },
    system: { type: 'string', default: 'benchsys' },
    tag: { type: 'string' },
  },
});
const runs = Number(values.runs);
const mungeSocket = process.env.SHIFTER_TEST_MUNGE_SOCKET ?? '/run/munge/munge.socket.2';
const cliBin = join(repo, 'packages/cli/bin/run.cjs');
if (!existsSync(join(repo, 'packages/cli/dist/index.js'))) {
  console.error('build the CLI first: npm run build -w @shifter/cli');
  process.exit(2);
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const work = mkdtempSync(join(tmpdir(), 'bench-cli-'));
let gateway;
let gatewayUrl = values.gateway;
let tag = values.tag;
const system = values.system;

async function startGateway() {
  const port = await freePort();
  const config = join(work, 'gateway.json');
  mkdirSync(join(work, 'images'));
  writeFileSync(
    config,
    JSON.stringify({
      gateway: { host: '127.0.0.1', port },
      storage: { cacheDir: join(work, 'cache'), expandDir: join(work, 'expand') },
      systems: {
        [system]: { transfer: { kind: 'local', imageDir: join(work, 'images') }, mungeSocketPath: mungeSocket },
      },
      // The harness registry is no configured location (allowedRegistries defaults to "configured").
      allowedRegistries: 'any',
      metadata: { kind: 'sqlite', path: join(work, 'gateway.db') },
      conversion: { compression: 'gzip' },
      logLevel: 'warn',
    }),
  );
  gateway = spawn(
    process.execPath,
    [join(repo, 'packages/gateway/bin/shifter-gateway.js'), 'serve', '--config', config],
    {
      env: { ...process.env, SHIFTER_GATEWAY_FROM_SOURCE: '1' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  gatewayUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${gatewayUrl}/api/status`)).ok) return;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error('gateway did not start');
}

function stop() {
  if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

// Wall time from here; CPU time (user + sys of the command and its children, e.g. munge) from GNU time, which is
// far less disturbed than wall time when other work shares the two cores.
const cpuFile = join(work, 'cpu');
function time(command, args, env) {
  const start = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, command, ...args], {
    env,
    encoding: 'utf8',
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  const [user, sys] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).map(Number);
  return { ms, cpuMs: (user + sys) * 1000, stdout: result.stdout.trim() };
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p90: at(0.9), min: sorted[0], max: sorted.at(-1) };
}

const loadavgBefore = (await import('node:os')).loadavg();
try {
  if (!gatewayUrl) await startGateway();
  const conf = join(work, 'udiRoot.conf');
  writeFileSync(conf, `imageGateway=${gatewayUrl}\nsystem=${system}\ndefaultImageType=docker\n`);
  const env = { PATH: process.env.PATH, HOME: work, SHIFTER_CONFIG: conf, SHIFTER_MUNGE_SOCKET: mungeSocket };
  if (!tag) {
    const registry = process.env.SHIFTER_TEST_REGISTRY ?? '127.0.0.1:5000';
    tag = `${registry}/test/busybox:latest`;
    execFileSync(process.execPath, [cliBin, 'pull', tag], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const url = `${gatewayUrl}/api/lookup/${encodeURIComponent(system)}/docker/${encodeURIComponent(tag)}/`;
  // curl gets the same work: make a munge credential, send it, print the id.
  const curlScript = `curl -sf -H "authentication: $(munge -S '${mungeSocket}' </dev/null)" '${url}'`;
  const expected = time(process.execPath, [cliBin, 'lookup', tag], env).stdout;
  const curlCheck = JSON.parse(time('sh', ['-c', curlScript], env).stdout).id;
  if (curlCheck !== expected) throw new Error(`curl saw id ${curlCheck}, shifterimg ${expected}`);

  const samples = { shifterimg: [], full: [], curl: [], node: [] };
  const cpu = { shifterimg: [], full: [], curl: [], node: [] };
  const record = (name, measured) => {
    samples[name].push(measured.ms);
    cpu[name].push(measured.cpuMs);
  };
  for (let i = 0; i < runs; i++) {
    record('shifterimg', time(process.execPath, [cliBin, 'lookup', tag], env));
    // The same lookup through the full oclif CLI ("--" is left to oclif by the fast path), to show what it saves.
    record('full', time(process.execPath, [cliBin, 'lookup', '--', tag], env));
    record('curl', time('sh', ['-c', curlScript], env));
    record('node', time(process.execPath, ['-e', '0'], env));
  }
  const result = {
    date: new Date().toISOString(),
    runs,
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    loadavg: (await import('node:os')).loadavg(),
    loadavgBefore,
    shifterimg: stats(samples.shifterimg),
    fullCli: stats(samples.full),
    curl: stats(samples.curl),
    nodeBare: stats(samples.node),
    cpuMedianMs: {
      shifterimg: stats(cpu.shifterimg).median,
      fullCli: stats(cpu.full).median,
      curl: stats(cpu.curl).median,
      nodeBare: stats(cpu.node).median,
    },
  };
  result.ratioMedian = result.shifterimg.median / result.curl.median;
  const fmt = (v) => v.toFixed(1).padStart(7);
  console.log(`cold lookup of ${tag}, ${runs} runs each, interleaved (ms)`);
  console.log('                      median      p90      min      max   cpu median');
  for (const [name, s, c] of [
    ['shifterimg lookup', result.shifterimg, result.cpuMedianMs.shifterimg],
    ['  via full oclif CLI', result.fullCli, result.cpuMedianMs.fullCli],
    ['curl + munge', result.curl, result.cpuMedianMs.curl],
    ['node -e 0 (floor)', result.nodeBare, result.cpuMedianMs.nodeBare],
  ]) {
    console.log(`${name.padEnd(20)} ${fmt(s.median)}  ${fmt(s.p90)}  ${fmt(s.min)}  ${fmt(s.max)}  ${fmt(c)}`);
  }
  console.log(
    `load average at the end: ${result.loadavg.map((v) => v.toFixed(2)).join(' ')} (wall times grow with it; CPU times much less)`,
  );
  console.log(
    `ratio shifterimg/curl (median): ${result.ratioMedian.toFixed(2)}x; target: shifterimg median <= 250 ms -> ${result.shifterimg.median <= 250 ? 'met' : 'NOT met'}`,
  );
  mkdirSync(join(repo, 'bench/out'), { recursive: true });
  writeFileSync(join(repo, 'bench/out/cli-lookup.json'), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  stop();
}
