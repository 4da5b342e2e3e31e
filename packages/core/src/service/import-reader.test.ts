import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFileAsCaller, readerCommand, writeError } from './import-reader.js';

const self = { uid: process.getuid!(), gid: process.getgid!(), groups: [] as number[], user: 'self' };
const limits = { maxBytes: 1024 * 1024, timeoutMs: 20_000 };

describe('copyFileAsCaller', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shifter-import-reader-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('copies a regular file and creates the destination 0600', async () => {
    const source = join(dir, 'image.sqfs');
    writeFileSync(source, Buffer.alloc(5000, 7));
    const destination = join(dir, 'copy');
    expect(await copyFileAsCaller(self, source, destination, limits)).toBe(5000);
    expect(readFileSync(destination).equals(readFileSync(source))).toBe(true);
  });

  it('refuses /dev/zero (a character device) without copying anything', async () => {
    const destination = join(dir, 'copy');
    await expect(copyFileAsCaller(self, '/dev/zero', destination, limits)).rejects.toMatchObject({
      code: 'SHIFTER_IMPORT_INVALID',
      message: expect.stringContaining('a character device'),
    });
    expect(existsSync(destination)).toBe(false);
  });

  it('refuses a FIFO with no writer instead of blocking on it', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(copyFileAsCaller(self, fifo, join(dir, 'copy'), limits)).rejects.toMatchObject({
      code: 'SHIFTER_IMPORT_INVALID',
      message: expect.stringContaining('a FIFO'),
    });
  });

  it('refuses a directory and a missing file', async () => {
    await expect(copyFileAsCaller(self, dir, join(dir, 'copy'), limits)).rejects.toMatchObject({
      code: 'SHIFTER_IMPORT_INVALID',
    });
    await expect(copyFileAsCaller(self, join(dir, 'missing'), join(dir, 'copy'), limits)).rejects.toMatchObject({
      code: 'SHIFTER_IMPORT_INVALID',
      message: expect.stringContaining('ENOENT'),
    });
  });

  it('refuses a file larger than the limit and leaves no copy', async () => {
    const source = join(dir, 'big');
    writeFileSync(source, Buffer.alloc(limits.maxBytes + 1));
    const destination = join(dir, 'copy');
    await expect(copyFileAsCaller(self, source, destination, limits)).rejects.toMatchObject({
      code: 'SHIFTER_SIZE_LIMIT',
      details: { size: limits.maxBytes + 1 },
    });
    expect(existsSync(destination)).toBe(false);
  });

  it("stops when the job is aborted, with the signal's reason", async () => {
    const source = join(dir, 'image.sqfs');
    writeFileSync(source, Buffer.alloc(10));
    const controller = new AbortController();
    controller.abort(new Error('lease lost'));
    await expect(
      copyFileAsCaller(self, source, join(dir, 'copy'), { ...limits, signal: controller.signal }),
    ).rejects.toThrow('lease lost');
  });

  it('gives up at the deadline with SHIFTER_IMPORT_TIMEOUT and removes the partial copy', async () => {
    const source = join(dir, 'image.sqfs');
    writeFileSync(source, Buffer.alloc(4 * 1024 * 1024));
    const destination = join(dir, 'copy');
    const deadline = new AbortController();
    const copying = copyFileAsCaller(self, source, destination, {
      ...limits,
      maxBytes: 8 * 1024 * 1024,
      deadline: () => deadline.signal,
    });
    // copyFileAsCaller starts the reader process before it first waits: the deadline passes while it reads.
    deadline.abort(new DOMException('the deadline passed', 'TimeoutError'));
    await expect(copying).rejects.toMatchObject({
      code: 'SHIFTER_IMPORT_TIMEOUT',
      details: { timeoutMs: limits.timeoutMs },
    });
    expect(existsSync(destination)).toBe(false);
  });

  it('never overwrites an existing destination', async () => {
    const source = join(dir, 'image.sqfs');
    writeFileSync(source, Buffer.alloc(10));
    const destination = join(dir, 'copy');
    writeFileSync(destination, 'keep');
    await expect(copyFileAsCaller(self, source, destination, limits)).rejects.toMatchObject({
      code: 'SHIFTER_IO_FAILED',
    });
    expect(readFileSync(destination, 'utf8')).toBe('keep');
  });
});

describe('readerCommand', () => {
  it("takes the caller's identity with setpriv as root, reads directly as the caller, refuses otherwise", () => {
    const caller = { uid: 2001, gid: 2001, groups: [2001, 100], user: 'u' };
    expect(readerCommand(caller, '/f', 10, 0)!.slice(0, 5)).toEqual([
      'setpriv',
      '--reuid=2001',
      '--regid=2001',
      '--groups=2001,100',
      '--',
    ]);
    expect(readerCommand(caller, '/f', 10, 2001)![0]).toBe(process.execPath);
    expect(readerCommand(caller, '/f', 10, 2002)).toBeNull();
  });
});

describe('writeError', () => {
  it('maps ENOSPC and EDQUOT to SHIFTER_NO_SPACE and other errors to SHIFTER_IO_FAILED', () => {
    const enospc = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    expect(writeError(enospc, '/x').code).toBe('SHIFTER_NO_SPACE');
    expect(writeError(Object.assign(new Error('quota'), { code: 'EDQUOT' }), '/x').code).toBe('SHIFTER_NO_SPACE');
    expect(writeError(Object.assign(new Error('io'), { code: 'EIO' }), '/x').code).toBe('SHIFTER_IO_FAILED');
  });
});
