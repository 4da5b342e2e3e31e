import { describe, expect, it } from 'vitest';
import { COMMANDS } from './commands.js';
import { MODES, normalizeArgv } from './upstream-argv.js';

describe('normalizeArgv (upstream option order)', () => {
  it('knows exactly the commands of the CLI', () => {
    expect([...MODES].sort()).toEqual(Object.keys(COMMANDS).sort());
  });

  it("moves upstream's leading options behind the mode, values included", () => {
    expect(normalizeArgv(['--user', 'alice', '--group', 'proj', 'pull', 'ubuntu:22.04'])).toEqual({
      argv: ['pull', '--user', 'alice', '--group', 'proj', 'ubuntu:22.04'],
    });
    expect(normalizeArgv(['-v', 'images'])).toEqual({ argv: ['images', '-v'] });
    expect(normalizeArgv(['--verbose', '--user=1001', 'pullnb', 'x:1'])).toEqual({
      argv: ['pullnb', '--verbose', '--user=1001', 'x:1'],
    });
    expect(normalizeArgv(['--config', '/etc/u.conf', '-v', 'lookup', 'ubuntu'])).toEqual({
      argv: ['lookup', '--config', '/etc/u.conf', '-v', 'ubuntu'],
    });
    // A value that looks like a mode is still the option's value.
    expect(normalizeArgv(['--user', 'images', 'pull', 'x'])).toEqual({ argv: ['pull', '--user', 'images', 'x'] });
  });

  it('leaves the usual order and help alone', () => {
    expect(normalizeArgv(['pull', 'x', '--user', 'alice'])).toEqual({ argv: ['pull', 'x', '--user', 'alice'] });
    expect(normalizeArgv(['lookup', '-v', 'x'])).toEqual({ argv: ['lookup', '-v', 'x'] });
    expect(normalizeArgv(['--help'])).toEqual({ argv: ['--help'] });
    expect(normalizeArgv(['-v', '-h'])).toEqual({ argv: ['--help'] });
    expect(normalizeArgv(['--version'])).toEqual({ argv: ['--version'] });
    expect(normalizeArgv(['-h'])).toEqual({ argv: ['--help'] });
    expect(normalizeArgv(['help'])).toEqual({ argv: ['--help'] });
    expect(normalizeArgv(['help', 'pull'])).toEqual({ argv: ['pull', '--help'] });
  });

  it('makes a missing or unknown mode, or an option without its value, a usage error', () => {
    for (const argv of [
      [],
      ['-v'],
      ['--user', 'alice'],
      ['fetch', 'x'],
      ['--user', 'alice', 'push', 'x'],
      ['--group'],
      ['-v', '--', 'images'],
    ]) {
      const normalized = normalizeArgv(argv);
      expect('usage' in normalized, argv.join(' ')).toBe(true);
    }
    expect(normalizeArgv(['fetch'])).toEqual({
      usage: expect.stringMatching(/^unknown mode "fetch": one of autoexpire, .*pullnb/),
    });
  });
});
