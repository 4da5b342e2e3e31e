import { describe, expect, it } from 'vitest';
import { parseExpirationTimeout } from './expiration.js';

describe('parseExpirationTimeout', () => {
  it('reads D:H:M:S from the seconds end', () => {
    expect(parseExpirationTimeout('90:00:00:00')).toBe(90 * 86_400_000);
    expect(parseExpirationTimeout('1:02:03:04')).toBe((86_400 + 2 * 3600 + 3 * 60 + 4) * 1000);
    expect(parseExpirationTimeout('90')).toBe(90_000);
    expect(parseExpirationTimeout('1:00')).toBe(60_000);
  });
  it('refuses anything else', () => {
    expect(() => parseExpirationTimeout('1d')).toThrow(expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }));
  });
});
