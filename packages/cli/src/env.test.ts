import { describe, expect, it } from 'vitest';
import { readCliEnvironment } from './env.js';

describe('readCliEnvironment', () => {
  it('reads only the documented variables', () => {
    const environment = readCliEnvironment({
      SHIFTER_CONFIG: '/x.conf',
      SHIFTER_MUNGE_SOCKET: '',
      HOME: '/home/u',
      SHIFTER_IMAGE: 'docker:evil',
      SHIFTER_IMAGEGATEWAY: 'http://evil',
    });
    expect(environment).toEqual({ config: '/x.conf', mungeSocket: undefined, home: '/home/u' });
  });
});
