import { NotFoundError, ShifterError } from '@shifter/core';
import { captureOutput } from '@oclif/test';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CliConfig } from '../../src/cli-config.js';
import { parseFastLookup, runFastLookup } from '../../src/fast-lookup.js';
import { type GatewayApi, useServices } from '../../src/services.js';
import { image, runCli, schemaErrors } from './helpers.js';

const settings: CliConfig = {
  file: '/x',
  imageGateway: ['http://gw:1'],
  system: 'vmcluster',
  defaultImageType: 'docker',
  timeoutMs: 1000,
};
let lookup: GatewayApi['lookup'];
let configFiles: string[];
let restore: () => void;

beforeEach(() => {
  configFiles = [];
  restore = useServices({
    environment: () => ({ config: '/from-env.conf', mungeSocket: undefined, home: '/nonexistent' }),
    loadConfig: async (file) => {
      configFiles.push(file);
      return settings;
    },
    createClient: () => ({ lookup: (type: string, tag: string) => lookup(type, tag) }) as GatewayApi,
    sign: async () => 'MUNGE:stub:',
  });
});
afterEach(() => restore());

async function fast(argv: string[]): Promise<{ stdout: string; stderr: string; exitCode: number | undefined }> {
  let exitCode: number | undefined;
  const { stdout, stderr } = await captureOutput(async () => {
    exitCode = await runFastLookup(argv);
  });
  return { stdout, stderr, exitCode };
}

describe('parseFastLookup', () => {
  it('takes plain lookups in any order', () => {
    expect(parseFastLookup(['lookup', 'ubuntu'])).toEqual({
      image: 'ubuntu',
      config: undefined,
      json: false,
      verbose: false,
    });
    expect(parseFastLookup(['lookup', '--json', '--config', '/c', '-v', 'x:1'])).toEqual({
      image: 'x:1',
      config: '/c',
      json: true,
      verbose: true,
    });
    expect(parseFastLookup(['lookup', '--config=/c', 'x', '--verbose'])).toMatchObject({ config: '/c', verbose: true });
  });

  it.each([
    [['images']],
    [['lookup']],
    [['lookup', '--help']],
    [['lookup', '-h', 'x']],
    [['lookup', 'a', 'b']],
    [['lookup', 'x', '--config']],
    [['lookup', 'x', '--config', '--json']],
    [['lookup', 'x', '--config=']],
    [['lookup', '--', 'x']],
    [['lookup', 'x', '--bogus']],
  ])('leaves %j to the full CLI', (argv) => {
    expect(parseFastLookup(argv)).toBeUndefined();
  });
});

describe('runFastLookup', () => {
  it('prints exactly what the oclif command prints, for success and errors, text and --json', async () => {
    const cases: Array<[string[], () => Promise<ReturnType<typeof image>>]> = [
      [['lookup', 'ubuntu'], async () => image()],
      [['lookup', 'ubuntu', '--json'], async () => image()],
      [
        ['lookup', 'docker:nope:1'],
        async () => {
          throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', 'gone');
        },
      ],
      [
        ['lookup', '--json', 'nope'],
        async () => {
          throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', 'gone');
        },
      ],
      [
        ['lookup', 'x'],
        async () => {
          throw new ShifterError('SHIFTER_GATEWAY_UNAVAILABLE', 'no image gateway answered');
        },
      ],
      [['lookup', 'docker:'], async () => image()],
    ];
    for (const [argv, answer] of cases) {
      lookup = answer;
      const viaFastPath = await fast(argv);
      const viaOclif = await runCli(argv);
      expect(viaFastPath.stdout, argv.join(' ')).toBe(viaOclif.stdout);
      expect(viaFastPath.stderr, argv.join(' ')).toBe(viaOclif.stderr);
      expect(viaFastPath.exitCode, argv.join(' ')).toBe(viaOclif.exitCode);
      if (argv.includes('--json')) {
        const output = JSON.parse(viaFastPath.stdout);
        expect(schemaErrors(viaFastPath.exitCode === 0 ? 'lookup' : 'error', output)).toEqual([]);
      }
    }
  });

  it('reads --config, else SHIFTER_CONFIG', async () => {
    lookup = async () => image();
    await fast(['lookup', 'x', '--config', '/flag.conf']);
    await fast(['lookup', 'x']);
    expect(configFiles).toEqual(['/flag.conf', '/from-env.conf']);
  });

  it('signs the first credential while udiRoot.conf loads, and a fresh one for each later attempt', async () => {
    const events: string[] = [];
    let signed = 0;
    const restoreSigner = useServices({
      sign: async (payload) => {
        events.push(`sign(${JSON.stringify(payload)})`);
        return `MUNGE:${++signed}:`;
      },
      loadConfig: async () => {
        events.push('loadConfig');
        return settings;
      },
      createClient: (_settings, _environment, authenticate) =>
        ({
          lookup: async () => {
            // A failover: two attempts, two credentials.
            events.push(`attempt ${await authenticate!('')}`);
            events.push(`attempt ${await authenticate!('')}`);
            return image();
          },
        }) as unknown as GatewayApi,
    });
    try {
      expect((await fast(['lookup', 'x'])).exitCode).toBe(0);
      expect(events).toEqual(['sign("")', 'loadConfig', 'attempt MUNGE:1:', 'sign("")', 'attempt MUNGE:2:']);
    } finally {
      restoreSigner();
    }
  });

  it('returns undefined without printing when the full CLI must run', async () => {
    expect(await fast(['lookup', '--help'])).toEqual({ stdout: '', stderr: '', exitCode: undefined });
  });
});
