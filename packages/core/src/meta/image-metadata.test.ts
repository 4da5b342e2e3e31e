import { describe, expect, it } from 'vitest';
import { imageMetadataFromConfig } from './image-metadata.js';

describe('imageMetadataFromConfig', () => {
  it('reads Env, Entrypoint, Cmd, WorkingDir, Labels and User', () => {
    const meta = imageMetadataFromConfig({
      architecture: 'amd64',
      config: {
        Env: ['PATH=/bin', 'A=b'],
        Entrypoint: ['/entry'],
        Cmd: ['run', '--fast'],
        WorkingDir: '/srv',
        Labels: { a: 'b', n: 1 },
        User: '1000:1000',
      },
    });
    expect(meta).toEqual({
      env: ['PATH=/bin', 'A=b'],
      entrypoint: ['/entry'],
      cmd: ['run', '--fast'],
      workdir: '/srv',
      labels: { a: 'b' },
      user: '1000:1000',
    });
  });
  it('gives empty values for a config without a config section', () => {
    expect(imageMetadataFromConfig({ rootfs: { type: 'layers', diff_ids: [] } })).toEqual({
      env: [],
      entrypoint: null,
      cmd: null,
      workdir: null,
      labels: {},
      user: null,
    });
  });
  it('treats a bare string Cmd as a one-item list', () => {
    expect(imageMetadataFromConfig({ config: { Cmd: '/bin/sh' } }).cmd).toEqual(['/bin/sh']);
  });
  it.each([
    [null],
    [[]],
    ['x'],
    [{ config: { Env: 'A=1' } }],
    [{ config: { Cmd: [1] } }],
    [{ config: { WorkingDir: 3 } }],
    [{ config: [] }],
  ])('refuses %j with SHIFTER_MANIFEST_INVALID', (config) => {
    expect(() => imageMetadataFromConfig(config)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_MANIFEST_INVALID' }),
    );
  });
});
