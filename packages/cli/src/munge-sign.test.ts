import { describe, expect, it } from 'vitest';
import { signWithMunge } from './munge-sign.js';

describe('signWithMunge', () => {
  it('reports an unreachable munged as SHIFTER_AUTH_UNAVAILABLE, through the addon or the munge command', async () => {
    await expect(signWithMunge('', '/nonexistent/munge.socket')).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_UNAVAILABLE',
    });
  });
});
