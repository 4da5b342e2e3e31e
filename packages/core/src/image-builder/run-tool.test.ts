import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runTool } from './run-tool.js';
import { mksquashfsArgs, resolveConversionConfig, tar2sqfsArgs } from './squashfs-builder.js';

describe('runTool', () => {
  it('resolves with exit code 0 and the stderr it captured', async () => {
    const result = await runTool('sh', ['-c', 'echo warn >&2; exit 0']);
    expect(result).toMatchObject({ exitCode: 0, stderr: 'warn\n' });
  });
  it('passes arguments verbatim, without a shell', async () => {
    const result = await runTool('sh', ['-c', 'printf "%s" "$1" >&2', 'sh', '$(touch /tmp/never); `x` "q"']);
    expect(result.stderr).toBe('$(touch /tmp/never); `x` "q"');
  });
  it('pipes stdin', async () => {
    const result = await runTool('sh', ['-c', 'wc -c >&2'], { stdin: Readable.from([Buffer.alloc(12345)]) });
    expect(result.stderr.trim()).toBe('12345');
  });
  it('fails with SHIFTER_CONVERSION_FAILED, exit code and stderr on a non-zero exit', async () => {
    await expect(runTool('sh', ['-c', 'echo broken >&2; exit 3'])).rejects.toMatchObject({
      code: 'SHIFTER_CONVERSION_FAILED',
      details: { tool: 'sh', exitCode: 3, stderr: 'broken' },
    });
  });
  it('fails with SHIFTER_TOOL_NOT_FOUND when the tool is missing', async () => {
    await expect(runTool('/nonexistent/mksquashfs', [])).rejects.toMatchObject({
      code: 'SHIFTER_TOOL_NOT_FOUND',
      details: { tool: '/nonexistent/mksquashfs' },
    });
  });
  it('keeps the head and the tail of a long stderr', async () => {
    const error = await runTool(
      'sh',
      ['-c', 'echo FIRST >&2; head -c 100000 /dev/zero | tr "\\0" x >&2; echo; echo LAST >&2; exit 1'],
      {
        stderrLimit: 2048,
      },
    ).catch((e: { details: { stderr: string } }) => e);
    const stderr = (error as { details: { stderr: string } }).details.stderr;
    expect(stderr.startsWith('FIRST')).toBe(true);
    expect(stderr.endsWith('LAST')).toBe(true);
    expect(stderr.length).toBeLessThan(2100);
  });
  it('kills the tool when aborted', async () => {
    const controller = new AbortController();
    const running = runTool('sleep', ['10'], { signal: controller.signal });
    // runTool spawns synchronously: the tool is running now.
    controller.abort(new Error('stop'));
    await expect(running).rejects.toMatchObject({ code: 'SHIFTER_CONVERSION_FAILED' });
  });
});

describe('squashfs tool arguments', () => {
  it('default mksquashfs: all-root, no xattrs, zstd level 3, memory bound, fixed mkfs time, quiet', () => {
    const args = mksquashfsArgs('/r', '/o', resolveConversionConfig({ processors: 2 }));
    expect(args).toEqual([
      '/r',
      '/o',
      '-noappend',
      '-all-root',
      '-no-xattrs',
      '-comp',
      'zstd',
      '-Xcompression-level',
      '3',
      '-processors',
      '2',
      '-mem',
      '512M',
      '-mkfs-time',
      '0',
      '-quiet',
      '-no-progress',
    ]);
  });
  it('gzip for old kernels, keepXattrs, extra arguments last', () => {
    const args = mksquashfsArgs(
      '/r',
      '/o',
      resolveConversionConfig({ compression: 'gzip', keepXattrs: true, extraArgs: ['-b', '1M'] }),
    );
    expect(args).not.toContain('-no-xattrs');
    expect(args.slice(args.indexOf('-comp'), args.indexOf('-comp') + 2)).toEqual(['-comp', 'gzip']);
    expect(args).not.toContain('-Xcompression-level');
    expect(args.slice(-2)).toEqual(['-b', '1M']);
  });
  it('refuses a level the compressor does not take', () => {
    expect(() =>
      mksquashfsArgs('/r', '/o', resolveConversionConfig({ compression: 'gzip', compressionLevel: 12 })),
    ).toThrow(expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }));
    expect(() => tar2sqfsArgs('/o', resolveConversionConfig({ compression: 'xz', compressionLevel: 3 }))).toThrow(
      expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }),
    );
  });
  it('tar2sqfs: root-owned defaults, level as comp-extra, output last', () => {
    const args = tar2sqfsArgs('/o', resolveConversionConfig({ tool: 'tar2sqfs', processors: 2 }));
    expect(args).toEqual([
      '--quiet',
      '--force',
      '--no-skip',
      '--no-xattr',
      '--compressor',
      'zstd',
      '--comp-extra',
      'level=3',
      '--num-jobs',
      '2',
      '--defaults',
      'uid=0,gid=0,mode=0755,mtime=0',
      '/o',
    ]);
  });
});
