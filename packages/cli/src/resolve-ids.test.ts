import { describe, expect, it } from 'vitest';
import { resolveIds } from './resolve-ids.js';

describe('resolveIds', () => {
  const resolver = async (database: string, name: string) =>
    database === 'passwd' && name === 'alice' ? 1001 : database === 'group' && name === 'team' ? 500 : undefined;

  it('accepts names and numbers, comma lists and repeats, without duplicates', async () => {
    expect(await resolveIds(['alice,1002', '1001', ' 7 '], 'passwd', resolver)).toEqual([1001, 1002, 7]);
    expect(await resolveIds(['team'], 'group', resolver)).toEqual([500]);
    expect(await resolveIds(undefined, 'group', resolver)).toEqual([]);
  });

  it('refuses unknown names and ids out of range', async () => {
    await expect(resolveIds(['bob'], 'passwd', resolver)).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
    await expect(resolveIds(['4294967295'], 'passwd', resolver)).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
  });
});
