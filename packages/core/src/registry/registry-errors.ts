import { RegistryError, type ErrorCode } from '../errors/index.js';
import { isRetryableNetworkError } from './retry-policy.js';

/** What kind of request failed; decides what a bare 404 means. */
export type RegistryRequestKind = 'manifest' | 'blob' | 'token' | 'probe';

/** A registry answer that was not a success. */
export interface RegistryFailure {
  /** HTTP status. */
  status: number;
  /** Response headers. */
  headers: Record<string, string | string[] | undefined>;
  /** Up to a few KiB of the body (the distribution spec's `{"errors":[…]}` document), if read. */
  body?: Buffer;
  /** Request kind. */
  kind: RegistryRequestKind;
  /** Human description: `manifest test/busybox:latest on 127.0.0.1:5000`. */
  what: string;
}

// The distribution spec's error codes (spec.md "Error Codes") and Docker Hub's TOOMANYREQUESTS.
const REGISTRY_CODE_MAP: Readonly<Record<string, ErrorCode>> = {
  MANIFEST_UNKNOWN: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN',
  NAME_UNKNOWN: 'SHIFTER_REGISTRY_NAME_UNKNOWN',
  BLOB_UNKNOWN: 'SHIFTER_REGISTRY_BLOB_UNKNOWN',
  UNAUTHORIZED: 'SHIFTER_REGISTRY_AUTH_FAILED',
  DENIED: 'SHIFTER_REGISTRY_DENIED',
  TOOMANYREQUESTS: 'SHIFTER_REGISTRY_RATE_LIMITED',
  UNSUPPORTED: 'SHIFTER_REGISTRY_PROTOCOL',
  NAME_INVALID: 'SHIFTER_REGISTRY_PROTOCOL',
  TAG_INVALID: 'SHIFTER_REGISTRY_PROTOCOL',
  MANIFEST_INVALID: 'SHIFTER_REGISTRY_PROTOCOL',
  DIGEST_INVALID: 'SHIFTER_REGISTRY_PROTOCOL',
};

function statusCode(status: number, kind: RegistryRequestKind): ErrorCode {
  if (status === 401) return 'SHIFTER_REGISTRY_AUTH_FAILED';
  if (status === 403) return 'SHIFTER_REGISTRY_DENIED';
  if (status === 404) {
    if (kind === 'blob') return 'SHIFTER_REGISTRY_BLOB_UNKNOWN';
    if (kind === 'manifest') return 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN';
    return 'SHIFTER_REGISTRY_PROTOCOL';
  }
  if (status === 429) return 'SHIFTER_REGISTRY_RATE_LIMITED';
  if (status === 408 || status >= 500) return 'SHIFTER_REGISTRY_UNAVAILABLE';
  return 'SHIFTER_REGISTRY_PROTOCOL';
}

/** A registry error's `code` or `message` as text; a number or boolean as written, anything else (an object) dropped. */
function textField(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : '';
}

function parseErrorBody(body: Buffer | undefined): Array<{ code: string; message: string }> {
  if (!body || body.length === 0) return [];
  try {
    const json = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(json.errors)) return [];
    return json.errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .slice(0, 5)
      .map((e) => ({ code: textField(e.code).slice(0, 64), message: textField(e.message).slice(0, 300) }));
  } catch {
    return [];
  }
}

/**
 * THE mapping from a registry's HTTP answer to a Shifter error. Every non-success answer of every registry
 * request goes through here, so codes stay consistent (containers/image's `httpResponseToError` habit).
 *
 * The registry's own error code (`{"errors":[{"code":"DENIED"}]}`) wins over the status; the status decides when
 * the body has none. The registry's status is kept in {@link RegistryError.registryStatus} and its error entries in
 * `details.registryErrors` (truncated; never credentials).
 *
 * @param failure - status, headers, body excerpt, request kind and description
 */
export function registryResponseError(failure: RegistryFailure): RegistryError {
  const errors = parseErrorBody(failure.body);
  const mapped = errors.map((e) => REGISTRY_CODE_MAP[e.code]).find((code) => code !== undefined);
  const code = mapped ?? statusCode(failure.status, failure.kind);
  const reason =
    errors.length > 0
      ? errors.map((e) => `${e.code}${e.message ? `: ${e.message}` : ''}`).join('; ')
      : httpReason(failure.status);
  return new RegistryError(code, `${failure.what}: registry answered ${failure.status} (${reason})`, {
    registryStatus: failure.status,
    details: { registryStatus: failure.status, registryErrors: errors, request: failure.what },
  });
}

function httpReason(status: number): string {
  const reasons: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    408: 'Request Timeout',
    416: 'Range Not Satisfiable',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  return reasons[status] ?? `HTTP ${status}`;
}

/**
 * Map a failure to reach the registry (DNS, refused, reset, timeout, TLS) to a Shifter error.
 * @param cause - what undici threw
 * @param what - request description
 */
export function registryNetworkError(cause: unknown, what: string): RegistryError {
  const message = cause instanceof Error ? cause.message : String(cause);
  const code =
    (cause as NodeJS.ErrnoException | undefined)?.code ??
    ((cause as Error | undefined)?.cause as NodeJS.ErrnoException | undefined)?.code;
  const tls = typeof code === 'string' && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code);
  return new RegistryError(
    'SHIFTER_REGISTRY_UNAVAILABLE',
    `${what}: ${tls ? 'TLS verification failed' : 'cannot reach the registry'} (${code ?? 'error'}: ${message})`,
    {
      cause,
      retryable: !tls && (isRetryableNetworkError(cause) || code === undefined),
      details: { request: what, networkCode: code },
    },
  );
}
