import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOG, ERROR_CODES, ExitCode, lookupErrorCode } from './error-catalog.js';
import { ShifterError, RegistryError, toShifterError } from './shifter-error.js';

const docsPath = fileURLToPath(new URL('../../../../docs/errors.md', import.meta.url));

function documentedRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of readFileSync(docsPath, 'utf8').split('\n')) {
    const match = /^\| `(SHIFTER_[A-Z0-9_]+)` \|(.*)\|\s*$/.exec(line);
    if (match)
      rows.set(
        match[1]!,
        match[2]!.split('|').map((cell) => cell.trim()),
      );
  }
  return rows;
}

describe('error catalogue', () => {
  it('documents every code in docs/errors.md with its status, exit code and retryable flag', () => {
    const rows = documentedRows();
    for (const code of ERROR_CODES) {
      const row = rows.get(code);
      expect(row, `${code} missing from docs/errors.md`).toBeDefined();
      const entry = ERROR_CATALOG[code];
      expect(row!.slice(0, 3)).toEqual([
        String(entry.httpStatus),
        String(entry.exitCode),
        entry.retryable ? 'yes' : 'no',
      ]);
    }
  });

  it('lists no stale codes in docs/errors.md', () => {
    const stale = [...documentedRows().keys()].filter((code) => !(code in ERROR_CATALOG));
    expect(stale).toEqual([]);
  });

  it('uses the SHIFTER_ prefix, HTTP error statuses and sysexits exit codes only', () => {
    const exitCodes = new Set<number>(Object.values(ExitCode));
    for (const code of ERROR_CODES) {
      expect(code).toMatch(/^SHIFTER_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(ERROR_CATALOG[code].httpStatus).toBeGreaterThanOrEqual(400);
      expect(ERROR_CATALOG[code].httpStatus).toBeLessThan(600);
      expect(exitCodes.has(ERROR_CATALOG[code].exitCode)).toBe(true);
    }
  });

  it('maps unknown codes to SHIFTER_INTERNAL', () => {
    expect(lookupErrorCode('SHIFTER_NO_SUCH_CODE')).toBe(ERROR_CATALOG.SHIFTER_INTERNAL);
  });
});

describe('ShifterError', () => {
  it('takes status, exit code and retryable from the catalogue', () => {
    const error = new RegistryError('SHIFTER_REGISTRY_RATE_LIMITED', 'slow down', { registryStatus: 429 });
    expect(error.httpStatus).toBe(503);
    expect(error.exitCode).toBe(ExitCode.TEMPFAIL);
    expect(error.retryable).toBe(true);
    expect(error.registryStatus).toBe(429);
    expect(error.name).toBe('RegistryError');
    expect(error.toJSON()).toEqual({ code: 'SHIFTER_REGISTRY_RATE_LIMITED', message: 'slow down', details: {} });
  });

  it('recognises instances by marker, not by class identity', () => {
    const foreign = Object.assign(Object.create(null), {
      [Symbol.for('shifter.error')]: true,
      code: 'SHIFTER_INTERNAL',
    });
    expect(ShifterError.isInstance(foreign)).toBe(true);
    expect(ShifterError.isInstance(new Error('x'))).toBe(false);
    expect(ShifterError.isInstance(null)).toBe(false);
  });

  it('wraps foreign errors as SHIFTER_INTERNAL and keeps the cause', () => {
    const cause = new TypeError('boom');
    const wrapped = toShifterError(cause);
    expect(wrapped.code).toBe('SHIFTER_INTERNAL');
    expect(wrapped.cause).toBe(cause);
    const original = new ShifterError('SHIFTER_REF_INVALID');
    expect(toShifterError(original)).toBe(original);
    expect(original.message).toBe(ERROR_CATALOG.SHIFTER_REF_INVALID.summary);
  });
});
