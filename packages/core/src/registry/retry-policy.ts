/** How the registry client retries transient failures. */
export interface RetryPolicy {
  /** Total attempts per request, first included (1 = no retry). */
  attempts: number;
  /** Base of the exponential backoff. */
  baseDelayMs: number;
  /** Cap of one backoff delay. */
  maxDelayMs: number;
  /** Longest `Retry-After` honoured; a registry asking for longer fails the request at once instead. */
  maxRetryAfterMs: number;
  /** How many times one blob download resumes after its connection broke. */
  maxResumes: number;
}

/** Default {@link RetryPolicy}: 5 attempts, 0.5 s → 8 s backoff with jitter, Retry-After up to 60 s, 5 resumes. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
  maxResumes: 5,
});

/** HTTP statuses worth retrying: timeouts, rate limiting and server-side failures. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Error codes of undici and the OS that mean the connection (not the request) failed. */
export const RETRYABLE_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/**
 * Milliseconds a `Retry-After` header asks for, or undefined when absent or unparsable.
 * @param value - delta-seconds or an HTTP date
 * @param now - current time (for tests)
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Delay before retry number `retry` (1 for the first retry): exponential with "equal jitter", so concurrent
 * clients spread out but never retry instantly.
 * @param policy - backoff parameters
 * @param retry - 1-based retry number
 * @param random - random source in [0, 1) (for tests)
 */
export function backoffDelay(
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  retry: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** Whether an error thrown by undici (or the OS) is a transient connection failure. */
export function isRetryableNetworkError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code !== undefined && RETRYABLE_NETWORK_CODES.has(code)) return true;
    current = current.cause;
  }
  return false;
}
