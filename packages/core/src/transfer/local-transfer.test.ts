import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

  it('moves files the caller gives up instead of copying them, and copies them otherwise', async () => {
    const base = mkdtempSync(join(tmpdir(), 'shifter-images-'));
    try {
      const transfer = new LocalTransfer({ imageDir: join(base, 'images') });
      const id = 'cd'.repeat(32);
      writeFileSync(join(base, 'img'), 'squashfs bytes');
      writeFileSync(join(base, 'meta'), 'FORMAT: squashfs\n');
      const inode = statSync(join(base, 'img')).ino;
      await transfer.put(join(base, 'img'), join(base, 'meta'), id, { private: true, move: true });
      const image = join(base, 'images', `${id}.squashfs`);
      expect(statSync(image).ino).toBe(inode);
      expect(statSync(image).mode & 0o777).toBe(0o600);
      expect(existsSync(join(base, 'img'))).toBe(false);
      expect(readFileSync(join(base, 'images', `${id}.meta`), 'utf8')).toBe('FORMAT: squashfs\n');

      writeFileSync(join(base, 'img2'), 'other bytes');
      writeFileSync(join(base, 'meta2'), 'FORMAT: squashfs\n');
      await transfer.put(join(base, 'img2'), join(base, 'meta2'), id, { private: false });
      expect(existsSync(join(base, 'img2'))).toBe(true);
      expect(statSync(image).ino).not.toBe(statSync(join(base, 'img2')).ino);
      expect(readFileSync(image, 'utf8')).toBe('other bytes');
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
