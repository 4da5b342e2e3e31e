import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeTransferContract } from '../testing/contracts/transfer-contract.js';
import { LocalTransfer } from './local-transfer.js';

describeTransferContract('LocalTransfer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shifter-images-'));
  return {
    transfer: new LocalTransfer({ imageDir: dir }),
    inspectDir: dir,
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe('LocalTransfer', () => {
  it('refuses image directories that are relative, have ".." or odd characters', () => {
    for (const imageDir of ['images', '/srv/../etc', '/srv/a b', '/srv/$(id)', "/srv/'x"]) {
      expect(() => new LocalTransfer({ imageDir })).toThrowError(
        expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }),
      );
    }
  });

  it('creates a missing image directory and cleans nothing in a missing one', async () => {
    const base = mkdtempSync(join(tmpdir(), 'shifter-images-'));
    try {
      const transfer = new LocalTransfer({ imageDir: join(base, 'not', 'yet') });
      expect(await transfer.cleanStale()).toBe(0);
      expect(await transfer.exists('ab'.repeat(32))).toBe(false);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
