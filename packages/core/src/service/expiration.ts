import { ConfigError } from '../errors/index.js';

/**
 * Parse upstream's `ImageExpirationTimeout` (`"D:H:M:S"`, fewer fields count from the seconds end: `"90"` is 90
 * seconds, `"1:00"` one minute) into milliseconds.
 *
 * @param text - the duration text
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` when it is not 1–4 colon-separated integers
 */
export function parseExpirationTimeout(text: string): number {
  if (!/^\d+(:\d+){0,3}$/.test(text)) {
    throw new ConfigError('SHIFTER_CONFIG_INVALID', `expiration timeout ${JSON.stringify(text)} is not D:H:M:S`);
  }
  const parts = text.split(':').map(Number).reverse();
  const factors = [1, 60, 3600, 86400];
  return parts.reduce((total, value, index) => total + value * factors[index]!, 0) * 1000;
}
