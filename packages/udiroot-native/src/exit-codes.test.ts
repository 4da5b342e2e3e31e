import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOG } from '@shifter/core';
import { UDI_EXIT_CODES, UDI_EXIT_TO_ERROR_CODE, udiExitCodeName } from './exit-codes.js';

const header = readFileSync(fileURLToPath(new URL('../native/src/udi_misc.h', import.meta.url)), 'utf8');

describe('exit codes mirror native/src/udi_misc.h', () => {
  it('has exactly the UDI_EX_* defines of the header, with the same values', () => {
    const fromHeader = Object.fromEntries(
      [...header.matchAll(/^#define (UDI_EX_[A-Z_]+) (\d+)\b/gm)].map((m) => [m[1], Number(m[2])]),
    );
    expect(Object.keys(fromHeader).length).toBeGreaterThanOrEqual(10);
    expect(UDI_EXIT_CODES).toEqual(fromHeader);
  });

  it('maps every failing code onto a catalogue code', () => {
    for (const name of Object.keys(UDI_EXIT_CODES)) {
      if (name === 'UDI_EX_OK') continue;
      const code = UDI_EXIT_TO_ERROR_CODE[name as keyof typeof UDI_EXIT_TO_ERROR_CODE];
      expect(code, name).toBeDefined();
      expect(ERROR_CATALOG[code]).toBeDefined();
    }
  });

  it('names codes and leaves other statuses unnamed', () => {
    expect(udiExitCodeName(77)).toBe('UDI_EX_NOPERM');
    expect(udiExitCodeName(127)).toBe('UDI_EX_EXEC_FAILED');
    expect(udiExitCodeName(42)).toBeUndefined();
  });
});
