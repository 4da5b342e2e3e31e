import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShifterError } from '../errors/index.js';
import { loadUdiRootConf, parseUdiRootConf } from './parse-udiroot-conf.js';

const example = `# site configuration
udiMount=/var/udiMount
loopMount=/var/udiLoopMount
imagePath=/images
udiRootPath=/opt/shifter
optUdiImage=/opt/shifter/libexec/shifter/opt/udiImage
etcPath=/etc/shifter/shifter_etc_files
mountUdiRootWritable=1
populateEtcDynamically = 1
allowLibcPwdCalls = 1
maxGroupCount=31
modprobePath=/sbin/modprobe
insmodPath=/sbin/insmod
cpPath=/bin/cp
mvPath=/bin/mv
chmodPath=/bin/chmod
ddPath=/bin/dd
rootfsType=tmpfs
siteFs=/home:/home;/scratch:/scratch:rec
siteEnv=SHIFTER_RUNTIME=1
siteEnvAppend=PATH=/opt/udiImage/bin
imageGateway=http://gw1:8000 \\
   http://gw2:8000
system=mycluster
defaultImageType=docker
`;

function invalid(text: string): ShifterError {
  try {
    parseUdiRootConf(text, { source: 'test.conf' });
  } catch (error) {
    if (ShifterError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('expected parseUdiRootConf to throw');
}

describe('parseUdiRootConf', () => {
  it('reads the upstream example into a normalised object', () => {
    const conf = parseUdiRootConf(example);
    expect(conf.udiMount).toBe('/var/udiMount');
    expect(conf.populateEtcDynamically).toBe(true);
    expect(conf.maxGroupCount).toBe(31);
    expect(conf.siteFs).toEqual(['/home:/home', '/scratch:/scratch:rec']);
    expect(conf.siteEnv).toEqual(['SHIFTER_RUNTIME=1']);
    expect(conf.imageGateway).toEqual(['http://gw1:8000', 'http://gw2:8000']);
    expect(conf.system).toBe('mycluster');
    expect(conf.defaultImageType).toBe('docker');
    expect(conf.gatewayTimeout).toBeNull();
    expect(conf.modules).toEqual({});
    expect(conf.ignored).toEqual([]);
  });

  it('joins continuation lines with one space and trims each piece', () => {
    const conf = parseUdiRootConf('siteEnv=A=1 \\\n  B=2\\\n\tC=3\nsystem = sys \\\n  two\n');
    expect(conf.siteEnv).toEqual(['A=1', 'B=2', 'C=3']);
    expect(conf.system).toBe('sys two');
  });

  it('keeps "#" inside a value and skips comment lines, including indented ones', () => {
    const conf = parseUdiRootConf('  # indented comment\nsiteEnv=A=x#y\n#system=no\nsystem=yes\n');
    expect(conf.siteEnv).toEqual(['A=x#y']);
    expect(conf.system).toBe('yes');
  });

  it('accumulates repeated list keys and keeps the last scalar', () => {
    const conf = parseUdiRootConf(
      'siteEnv=A=1\nsiteEnv=B=2\nsystem=a\nsystem=b\nimageGateway=http://a\nimageGateway=http://b\n',
    );
    expect(conf.siteEnv).toEqual(['A=1', 'B=2']);
    expect(conf.imageGateway).toEqual(['http://a', 'http://b']);
    expect(conf.system).toBe('b');
  });

  it('parses modules with every subkey', () => {
    const conf = parseUdiRootConf(
      [
        'module_mpich_copyPath=/opt/cray/mpich',
        'module_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib64',
        'module_mpich_userhook=/opt/udiImage/modules/mpich/bin/init.sh',
        'module_mpich_roothook=/etc/shifter/mpich-root.sh',
        'module_mpich_conflict=openmpi   other',
        'module_mpich_siteEnv=A=1 B=2',
        'module_mpich_siteEnvAppend=PATH=/x',
        'module_mpich_siteEnvUnset=FOO BAR',
        'module_cvmfs_siteFs=/cvmfs_nfs:/cvmfs',
        'module_cvmfs_enabled=0',
        'defaultModules=mpich,cvmfs',
      ].join('\n'),
    );
    expect(conf.modules.mpich).toEqual({
      userhook: '/opt/udiImage/modules/mpich/bin/init.sh',
      roothook: '/etc/shifter/mpich-root.sh',
      siteEnv: ['A=1', 'B=2'],
      siteEnvPrepend: ['LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib64'],
      siteEnvAppend: ['PATH=/x'],
      siteEnvUnset: ['FOO', 'BAR'],
      siteFs: [],
      copyPath: '/opt/cray/mpich',
      conflict: ['openmpi', 'other'],
      enabled: true,
    });
    expect(conf.modules.cvmfs?.siteFs).toEqual(['/cvmfs_nfs:/cvmfs']);
    expect(conf.modules.cvmfs?.enabled).toBe(false);
    expect(conf.defaultModules).toEqual(['mpich', 'cvmfs']);
  });

  it('parses sizes, propagation styles and per-node cache lists', () => {
    const conf = parseUdiRootConf(
      'perNodeCacheSizeLimit=10G\nperNodeCacheAllowedFsType=xfs ext4\nmountPropagationStyle=slave\ngatewayTimeout=30\nusersToImport=sshd nobody\n',
    );
    expect(conf.perNodeCacheSizeLimit).toBe(10 * 1024 ** 3);
    expect(conf.perNodeCacheAllowedFsType).toEqual(['xfs', 'ext4']);
    expect(conf.mountPropagationStyle).toBe('slave');
    expect(conf.gatewayTimeout).toBe(30);
    expect(conf.usersToImport).toEqual(['sshd', 'nobody']);
  });

  it('records deprecated keys instead of failing on them', () => {
    const conf = parseUdiRootConf('system=a\nautoLoadKernelModule=1\nkmodBasePath=/lib/modules\n');
    expect(conf.ignored).toEqual([
      { key: 'autoLoadKernelModule', line: 2 },
      { key: 'kmodBasePath', line: 3 },
    ]);
  });

  it('reads upstream spellings with upstream meaning and a warning: strtol booleans, a module subkey in the wrong case', () => {
    const conf = parseUdiRootConf(
      'allowLocalChroot=yes\nmountUdiRootWritable=true\npopulateEtcDynamically=1x\nmodule_mpich_copypath=/opt/mpich\nmodule_mpich_enabled=no\n',
    );
    // strtol("yes") and strtol("true") are 0: a word never turns on what upstream left off.
    expect(conf.allowLocalChroot).toBe(false);
    expect(conf.mountUdiRootWritable).toBe(false);
    expect(conf.populateEtcDynamically).toBe(true); // strtol("1x") is 1, as upstream
    // The misspelt subkey is ignored as upstream ignored it, but the module exists (upstream created it first).
    expect(conf.modules.mpich).toMatchObject({ copyPath: null, enabled: false });
    expect(conf.warnings).toEqual([
      {
        key: 'allowLocalChroot',
        line: 1,
        message:
          "allowLocalChroot=yes is not 0 or 1: read as 0 (off), as upstream Shifter's strtol read it; write allowLocalChroot=0 or allowLocalChroot=1",
      },
      {
        key: 'mountUdiRootWritable',
        line: 2,
        message:
          "mountUdiRootWritable=true is not 0 or 1: read as 0 (off), as upstream Shifter's strtol read it; write mountUdiRootWritable=0 or mountUdiRootWritable=1",
      },
      {
        key: 'populateEtcDynamically',
        line: 3,
        message:
          "populateEtcDynamically=1x is not 0 or 1: read as 1 (on), as upstream Shifter's strtol read it; write populateEtcDynamically=0 or populateEtcDynamically=1",
      },
      {
        key: 'module_mpich_copypath',
        line: 4,
        message: 'module_mpich_copypath is ignored, as upstream Shifter ignored it; the key is module_mpich_copyPath',
      },
      {
        key: 'module_mpich_enabled',
        line: 5,
        message:
          "module_mpich_enabled=no is not 0 or 1: read as 0 (off), as upstream Shifter's strtol read it; write module_mpich_enabled=0 or module_mpich_enabled=1",
      },
    ]);
    expect(parseUdiRootConf('allowLocalChroot=1\nmodule_a_copyPath=/x\n').warnings).toEqual([]);
  });

  it('reads gatewayCaPath', () => {
    expect(
      parseUdiRootConf('imageGateway=https://gw:8443 http://gw2:8000\ngatewayCaPath=/etc/shifter/gw-ca.pem\n'),
    ).toMatchObject({
      imageGateway: ['https://gw:8443', 'http://gw2:8000'],
      gatewayCaPath: '/etc/shifter/gw-ca.pem',
    });
  });

  it('rejects an unknown key with SHIFTER_CONFIG_INVALID and its line number', () => {
    const error = invalid('system=a\n\n# c\nsiteResources=/opt/gpu\n');
    expect(error.code).toBe('SHIFTER_CONFIG_INVALID');
    expect(error.details).toMatchObject({ file: 'test.conf', line: 4, key: 'siteResources' });
    expect(error.message).toContain('test.conf:4');
  });

  it('reports the first line of a continued record', () => {
    const error = invalid('system=a\nbogus=1 \\\n 2\n');
    expect(error.details).toMatchObject({ line: 2 });
  });

  it.each([
    ['a line without "="', 'just words\n', 1],
    ['an empty key', ' = value\n', 1],
    ['a negative count', 'maxGroupCount=-1\n', 1],
    ['a bad size', 'perNodeCacheSizeLimit=10Q\n', 1],
    ['a bad propagation style', 'system=x\nmountPropagationStyle=shared\n', 2],
    ['an empty scalar', 'udiMount=\n', 1],
    ['an unknown module subkey', 'module_gpu_siteResources=/x\n', 1],
    ['a module name with "_"', 'module_my_mod_copyPath=/x\n', 1],
    ['a module key without subkey', 'module_gpu=/x\n', 1],
    ['a module name with a path character', 'module_../x_copyPath=/x\n', 1],
    ['a module name with a dot', 'module_a.b_enabled=1\n', 1],
    ['a prototype key', '__proto__=x\n', 1],
  ])('rejects %s', (_label, text, line) => {
    const error = invalid(text);
    expect(error.code).toBe('SHIFTER_CONFIG_INVALID');
    expect(error.details.line).toBe(line);
  });

  it('strips one pair of surrounding quotes from siteFs items', () => {
    expect(parseUdiRootConf('siteFs="/a:/b";/c:/d\n').siteFs).toEqual(['/a:/b', '/c:/d']);
  });

  it('handles CRLF line endings', () => {
    expect(parseUdiRootConf('system=a\r\ndefaultImageType=docker\r\n')).toMatchObject({
      system: 'a',
      defaultImageType: 'docker',
    });
  });
});

describe('loadUdiRootConf', () => {
  it('reads a file and names it in errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'udiroot-'));
    try {
      const file = join(dir, 'udiRoot.conf');
      await writeFile(file, 'system=x\nnope=1\n');
      await expect(loadUdiRootConf(file)).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INVALID',
        details: { file, line: 2 },
      });
      await writeFile(file, 'system=x\n');
      await expect(loadUdiRootConf(file)).resolves.toMatchObject({ system: 'x' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('maps a missing file to SHIFTER_CONFIG_NOT_FOUND', async () => {
    await expect(loadUdiRootConf('/nonexistent/udiRoot.conf')).rejects.toMatchObject({
      code: 'SHIFTER_CONFIG_NOT_FOUND',
      details: { errno: 'ENOENT' },
    });
  });
});
