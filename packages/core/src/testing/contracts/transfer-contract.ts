/**
 * The transfer contract suite: every {@link Transfer} implementation must pass it.
 *
 * @packageDocumentation
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ShifterError } from '../../errors/index.js';
import type { Transfer } from '../../transfer/transfer.js';

/** What a factory returns for one test. */
export interface TransferUnderTest {
  /** A transfer whose image directory is empty. */
  readonly transfer: Transfer;
  /**
   * Where this process can see the target image directory (the same path for local transfers; for ssh to this
   * host or to a network namespace on it, the same directory too — namespaces share the file system).
   */
  readonly inspectDir: string;
  /** Called after the test. */
  readonly teardown?: () => Promise<void>;
}

/** Makes a fresh transfer per test. */
export type TransferFactory = () => Promise<TransferUnderTest>;

const ID = 'ab'.repeat(32);
const OTHER_ID = 'cd'.repeat(32);

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    expect(ShifterError.isInstance(error), `expected a ShifterError, got ${String(error)}`).toBe(true);
    expect((error as ShifterError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}

/**
 * Define the contract tests for one transfer implementation.
 * @param name - shown in the test names
 * @param factory - makes a transfer with an empty image directory per test
 */
export function describeTransferContract(name: string, factory: TransferFactory): void {
  describe(`Transfer contract: ${name}`, () => {
    let transfer: Transfer;
    let inspectDir: string;
    let teardown: (() => Promise<void>) | undefined;
    let sources: string;

    const source = (file: string, content: string): string => {
      const path = join(sources, file);
      writeFileSync(path, content);
      return path;
    };
    const target = (file: string): string => join(inspectDir, file);
    const modeOf = (file: string): number => statSync(target(file)).mode & 0o7777;
    const listing = (): string[] => readdirSync(inspectDir).sort();

    beforeEach(async () => {
      sources = mkdtempSync(join(tmpdir(), 'shifter-transfer-src-'));
      const made = await factory();
      transfer = made.transfer;
      inspectDir = made.inspectDir;
      teardown = made.teardown;
    });

    afterEach(async () => {
      await teardown?.();
      rmSync(sources, { recursive: true, force: true });
    });

    it('puts a public image and its meta with mode 0644 and leaves no temp file', async () => {
      const image = source('img', 'squashfs bytes \u0000\u0001');
      const meta = source('meta', 'FORMAT: squashfs\n');
      expect(await transfer.exists(ID)).toBe(false);
      await transfer.put(image, meta, ID);
      expect(readFileSync(target(`${ID}.squashfs`), 'utf8')).toBe('squashfs bytes \u0000\u0001');
      expect(readFileSync(target(`${ID}.meta`), 'utf8')).toBe('FORMAT: squashfs\n');
      expect(modeOf(`${ID}.squashfs`)).toBe(0o644);
      expect(modeOf(`${ID}.meta`)).toBe(0o644);
      expect(listing()).toEqual([`${ID}.meta`, `${ID}.squashfs`]);
      expect(await transfer.exists(ID)).toBe(true);
      // Sources are only read.
      expect(readFileSync(image, 'utf8')).toBe('squashfs bytes \u0000\u0001');
    });

    it('puts a private image and its meta with mode 0600', async () => {
      await transfer.put(source('img', 'x'), source('meta', 'USERACL: 1000\n'), ID, { private: true });
      expect(modeOf(`${ID}.squashfs`)).toBe(0o600);
      expect(modeOf(`${ID}.meta`)).toBe(0o600);
    });

    it('replaces files atomically when put again', async () => {
      await transfer.put(source('img', 'one'), source('meta', 'm1'), ID);
      await transfer.put(source('img2', 'two'), source('meta2', 'm2'), ID);
      expect(readFileSync(target(`${ID}.squashfs`), 'utf8')).toBe('two');
      expect(readFileSync(target(`${ID}.meta`), 'utf8')).toBe('m2');
      expect(listing()).toEqual([`${ID}.meta`, `${ID}.squashfs`]);
    });

    it('uses the format as the image extension', async () => {
      await transfer.put(source('img', 'c'), source('meta', 'FORMAT: cramfs\n'), ID, { format: 'cramfs' });
      expect(listing()).toEqual([`${ID}.cramfs`, `${ID}.meta`]);
      expect(await transfer.exists(ID, { format: 'cramfs' })).toBe(true);
      expect(await transfer.exists(ID)).toBe(false);
    });

    it('writes no meta when the copy fails, so the image never looks ready', async () => {
      await expectCode(transfer.put(source('img', 'x'), join(sources, 'missing-meta'), ID), 'SHIFTER_TRANSFER_FAILED');
      expect(listing().filter((n) => n.endsWith('.meta') || n.includes('shifter-tmp'))).toEqual([]);
      expect(await transfer.exists(ID)).toBe(false);
      await expectCode(
        transfer.put(join(sources, 'missing-image'), source('meta', 'm'), OTHER_ID),
        'SHIFTER_TRANSFER_FAILED',
      );
      expect(listing().filter((n) => n.startsWith(OTHER_ID) || n.includes('shifter-tmp'))).toEqual([]);
    });

    it('refuses ids and formats that are not safe file names, before any I/O', async () => {
      const image = source('img', 'x');
      const meta = source('meta', 'm');
      for (const bad of [
        '../../etc/passwd',
        'ABCDEF0123',
        '',
        'abc',
        `${ID}/x`,
        `${ID}; rm -rf /`,
        '$(id)',
        `-${ID}`,
      ]) {
        await expectCode(transfer.put(image, meta, bad), 'SHIFTER_USAGE_INVALID_ARGUMENT');
        await expectCode(transfer.remove(bad), 'SHIFTER_USAGE_INVALID_ARGUMENT');
        await expectCode(transfer.exists(bad), 'SHIFTER_USAGE_INVALID_ARGUMENT');
      }
      for (const format of ['../x', 'meta', 'Squash', 'a b', '']) {
        await expectCode(transfer.put(image, meta, ID, { format }), 'SHIFTER_USAGE_INVALID_ARGUMENT');
      }
      expect(listing()).toEqual([]);
    });

    it('removes the meta and the image, idempotently', async () => {
      await transfer.put(source('img', 'x'), source('meta', 'm'), ID);
      await transfer.put(source('img2', 'y'), source('meta2', 'n'), OTHER_ID);
      expect(await transfer.remove(ID)).toBe(true);
      expect(listing()).toEqual([`${OTHER_ID}.meta`, `${OTHER_ID}.squashfs`]);
      expect(await transfer.exists(ID)).toBe(false);
      expect(await transfer.remove(ID)).toBe(false);
    });

    it('replaces only the meta (and re-applies the mode) for a metadata-only transfer', async () => {
      await transfer.put(source('img', 'image'), source('meta', 'old'), ID);
      await transfer.putMeta(source('meta2', 'USERACL: 1000\n'), ID, { private: true });
      expect(readFileSync(target(`${ID}.meta`), 'utf8')).toBe('USERACL: 1000\n');
      expect(readFileSync(target(`${ID}.squashfs`), 'utf8')).toBe('image');
      expect(modeOf(`${ID}.squashfs`)).toBe(0o600);
      expect(modeOf(`${ID}.meta`)).toBe(0o600);
      await transfer.putMeta(source('meta3', 'public again\n'), ID, { private: false });
      expect(modeOf(`${ID}.squashfs`)).toBe(0o644);
      await expectCode(transfer.putMeta(source('meta4', 'x'), OTHER_ID), 'SHIFTER_IMAGE_NOT_FOUND');
      expect(listing()).toEqual([`${ID}.meta`, `${ID}.squashfs`]);
    });

    it('says not ready while only the image is there', async () => {
      writeFileSync(target(`${ID}.squashfs`), 'half');
      expect(await transfer.exists(ID)).toBe(false);
    });

    it('cleans only its own stale temp files', async () => {
      const stale = [`.${ID}.squashfs.shifter-tmp-0a1b2c3d4e5f`, `.${OTHER_ID}.meta.shifter-tmp-ffffffffffff`];
      const foreign = ['.keep', `${ID}.squashfs`, 'notes.shifter-tmp-1', `.${ID}.squashfs.partial.XXXX`];
      for (const name of [...stale, ...foreign]) writeFileSync(target(name), 'left over');
      expect(await transfer.cleanStale()).toBe(2);
      expect(listing()).toEqual([...foreign].sort());
      expect(await transfer.cleanStale()).toBe(0);
    });
  });
}
