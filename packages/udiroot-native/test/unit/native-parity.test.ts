/**
 * The C runtime's readers against the TypeScript ones in @shifter/core, on the same inputs: the shared .meta test
 * vectors (docs/meta-format.md) and a set of udiRoot.conf files. Builds the test-only dump tools with make.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMeta, parseUdiRootConf, type UdiRootConf } from '@shifter/core';

const nativeDir = fileURLToPath(new URL('../../native', import.meta.url));
const vectorsPath = fileURLToPath(new URL('../../../core/src/meta/meta-vectors.json', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'udiroot-parity-'));
const build = join(work, 'build');

interface Vector {
  name: string;
  text: string;
}
const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8')) as {
  format: Vector[];
  parse: Vector[];
  invalid: Vector[];
};

function runDump(
  tool: string,
  text: string,
  extra: string[] = [],
): { status: number | null; json: Record<string, unknown>; stderr: string } {
  const file = join(work, `${tool}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, text);
  const result = spawnSync(join(build, tool), [...extra, file], { encoding: 'utf8' });
  return {
    status: result.status,
    json: JSON.parse(result.stdout || 'null') as Record<string, unknown>,
    stderr: result.stderr,
  };
}

beforeAll(() => {
  execFileSync('make', ['-s', '-C', nativeDir, `BUILD=${build}`, `${build}/udiconf-dump`, `${build}/udimeta-dump`], {
    stdio: 'pipe',
  });
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('.meta: C reader = TypeScript reader on the shared vectors', () => {
  it.each([...vectors.format, ...vectors.parse].map((v) => [v.name, v] as const))('%s', (_name, vector) => {
    const fromTs = parseMeta(vector.text);
    const { status, json } = runDump('udimeta-dump', vector.text);
    expect(status).toBe(0);
    expect(json).toEqual({
      format: fromTs.format,
      entrypoint: fromTs.entrypoint,
      cmd: fromTs.cmd,
      workdir: fromTs.workdir,
      env: fromTs.env,
      userACL: fromTs.userACL ?? [],
      groupACL: fromTs.groupACL ?? [],
      user: fromTs.user ?? null,
    });
  });

  it.each(vectors.invalid.map((v) => [v.name, v] as const))('refuses invalid vector: %s', (_name, vector) => {
    expect(() => parseMeta(vector.text)).toThrow();
    const { status, json } = runDump('udimeta-dump', vector.text);
    expect(status).toBe(65);
    expect(typeof json.error).toBe('string');
  });
});

// The runtime applies its defaults while parsing; the TypeScript parser reports "unset" as null.
function withRuntimeDefaults(conf: UdiRootConf): Record<string, unknown> {
  const { ignored: _ignored, warnings: _warnings, ...rest } = conf;
  const out: Record<string, unknown> = { ...rest };
  for (const key of ['populateEtcDynamically', 'allowLibcPwdCalls', 'mountUdiRootWritable', 'allowLocalChroot']) {
    out[key] = out[key] ?? false;
  }
  out.maxGroupCount = conf.maxGroupCount ?? 0;
  out.gatewayTimeout = conf.gatewayTimeout ?? 10;
  out.perNodeCacheSizeLimit = conf.perNodeCacheSizeLimit ?? 0;
  return out;
}

const confs: Array<[string, string]> = [
  [
    'minimal',
    'udiMount=/var/udiMount\nloopMount=/var/udiLoopMount\nimagePath=/images\nudiRootPath=/opt/shifter\netcPath=/etc/shifter/etc\nrootfsType=tmpfs\n',
  ],
  [
    'every key, comments, blanks and padding',
    `# site configuration
udiMount = /var/udiMount
loopMount=/var/udiLoopMount
imagePath=/images
udiRootPath=/opt/shifter
etcPath=/etc/shifter/shifter_etc_files
populateEtcDynamically=1
usersToImport=sshd nobody
allowLibcPwdCalls=1
maxGroupCount=31
cpPath=/bin/cp
mvPath=/bin/mv
chmodPath=/bin/chmod
ddPath=/bin/dd
modprobePath=/sbin/modprobe
insmodPath=/sbin/insmod
mkfsXfsPath=/sbin/mkfs.xfs
rootfsType=tmpfs
mountUdiRootWritable=0
mountPropagationStyle=slave
siteFs=/global/u1:/global/u1;/global/project:/global/project:ro;"/scratch"
siteEnv=SHIFTER_RUNTIME=1 SITE=x
siteEnvAppend=PATH=/opt/udiImage/bin
siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/lib
siteEnvUnset=NEW_VAR OTHER
sitePreMountHook=/etc/shifter/premount.sh
sitePostMountHook=/etc/shifter/postmount.sh
optUdiImage=/opt/shifter/udiImage
allowLocalChroot=0
perNodeCachePath=/tmp
imageWriter=shifter
perNodeCacheSizeLimit=200G
perNodeCacheAllowedFsType=xfs
imageGateway=http://gw1:7777 http://gw2:7777
gatewayTimeout=5
gatewayCaPath=/etc/shifter/gateway-ca.pem
system=mycluster
defaultImageType=docker
defaultModules=mpich, gpu
batchType=slurm
module_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib
module_mpich_copyPath=/opt/mpich-abi
module_mpich_userhook=/opt/udiImage/modules/mpich/bin/init.sh
module_mpich_conflict=openmpi
module_gpu_siteFs=/usr/lib/nvidia:/opt/nvidia
module_gpu_siteFs=/dev/shm:/dev/shm
module_gpu_roothook=/etc/shifter/gpu.sh
module_gpu_siteEnv=CUDA=1
module_gpu_siteEnv=CUDA=2
module_openmpi_enabled=0
optionalSshdAsRoot=1
nodeContextPrefix=x
`,
  ],
  [
    'continuation lines',
    'siteEnv=A=1 \\\n   B=2 \\\n# a comment inside\n C=3\nimageGateway=http://a:1 \\\nhttp://b:2\nsiteFs=/a:/a;\\\n/b:/b\n',
  ],
  [
    'repeated list keys accumulate, scalars keep the last',
    'siteEnv=A=1\nsiteEnv=B=2\nsystem=one\nsystem=two\nsiteFs=/a\nsiteFs=/b\n',
  ],
  ['CRLF line ends', 'udiMount=/u\r\nsystem=s\r\nallowLocalChroot=1\r\n'],
  [
    'upstream spellings read with upstream meaning',
    'allowLocalChroot=yes\nmountUdiRootWritable=true\nallowLibcPwdCalls=-1\npopulateEtcDynamically=\nmodule_mpich_copypath=/opt/mpich\n' +
      'module_mpich_USERHOOK=/x\nmodule_gpu_enabled=on\nmodule_gpu_siteEnv=A=1\nimageGateway=https://gw:8443 http://gw2:8000\n',
  ],
];

describe('udiRoot.conf: C parser = TypeScript parser', () => {
  it.each(confs)('%s', (_name, text) => {
    const parsed = parseUdiRootConf(text);
    const { status, json, stderr } = runDump('udiconf-dump', text);
    expect(status).toBe(0);
    expect(json).toEqual(withRuntimeDefaults(parsed));
    // The same warnings, word for word (the runtime prints them on every start).
    expect(stderr).toBe(parsed.warnings.map((w) => `line ${w.line}: ${w.message}\n`).join(''));
  });

  it.each([
    ['unknown key', 'bogusKey=1\n'],
    ['removed upstream key', 'siteResources=/x\n'],
    ['line without =', 'udiMount /x\n'],
    ['bad integer', 'gatewayTimeout=ten\n'],
    ['bad size', 'perNodeCacheSizeLimit=lots\n'],
    ['bad propagation', 'mountPropagationStyle=shared\n'],
    ['empty scalar', 'system=\n'],
    ['module name with _', 'module_a_b_siteEnv=X=1\n'],
    ['unknown module subkey', 'module_a_bogus=1\n'],
  ])('both refuse: %s', (_name, text) => {
    expect(() => parseUdiRootConf(text)).toThrow();
    const { status, json } = runDump('udiconf-dump', text);
    expect(status).toBe(78);
    expect(typeof json.error).toBe('string');
  });

  it('the runtime additionally refuses a configuration without its required keys', () => {
    const { status, json } = runDump('udiconf-dump', 'system=x\n', ['--validate']);
    expect(status).toBe(78);
    expect(String(json.error)).toContain('udiMount');
  });
});
