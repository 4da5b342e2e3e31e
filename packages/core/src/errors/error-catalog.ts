/**
 * The one error catalogue of Shifter.
 *
 * Every error the product reports has a stable code listed here, with the HTTP status the gateway answers, the exit
 * code the command-line tools use (sysexits.h) and whether retrying the same operation may succeed. Codes are never
 * renamed or reused; `docs/errors.md` documents each one and a test keeps the two in sync.
 *
 * @packageDocumentation
 */

/** One catalogue row. */
export interface ErrorCatalogEntry {
  /** HTTP status the gateway answers with. */
  readonly httpStatus: number;
  /** Process exit code of `shifterimg` and other tools (sysexits.h values). */
  readonly exitCode: number;
  /** Whether the same operation may succeed when retried later. */
  readonly retryable: boolean;
  /** One-line summary, used in docs and as the default message. */
  readonly summary: string;
}

/** sysexits.h exit codes used by the catalogue. */
export const ExitCode = {
  OK: 0,
  USAGE: 64,
  DATAERR: 65,
  NOINPUT: 66,
  NOUSER: 67,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  OSERR: 71,
  CANTCREAT: 73,
  IOERR: 74,
  TEMPFAIL: 75,
  PROTOCOL: 76,
  NOPERM: 77,
  CONFIG: 78,
} as const;

const e = (httpStatus: number, exitCode: number, retryable: boolean, summary: string): ErrorCatalogEntry => ({
  httpStatus,
  exitCode,
  retryable,
  summary,
});

/**
 * Code → behaviour. Keep sorted by area. Add new codes at the end of their area; never rename or remove one.
 */
export const ERROR_CATALOG = {
  // usage / input
  SHIFTER_USAGE_INVALID_ARGUMENT: e(400, ExitCode.USAGE, false, 'An argument or request field is invalid'),
  SHIFTER_REQUEST_TOO_LARGE: e(413, ExitCode.USAGE, false, 'The request body is larger than allowed'),
  SHIFTER_REF_INVALID: e(400, ExitCode.DATAERR, false, 'The image reference is malformed'),
  SHIFTER_SYSTEM_UNKNOWN: e(404, ExitCode.NOINPUT, false, 'The named system is not configured on the gateway'),
  SHIFTER_ROUTE_NOT_FOUND: e(404, ExitCode.USAGE, false, 'The gateway has no such endpoint'),
  SHIFTER_METHOD_NOT_ALLOWED: e(405, ExitCode.USAGE, false, 'The endpoint does not offer this HTTP method'),
  SHIFTER_REQUEST_MALFORMED: e(
    400,
    ExitCode.USAGE,
    false,
    'The HTTP request is malformed (bad URL encoding, framing or characters)',
  ),
  SHIFTER_HEADERS_TOO_LARGE: e(431, ExitCode.USAGE, false, 'The request headers are larger than allowed'),
  SHIFTER_REQUEST_TIMEOUT: e(408, ExitCode.TEMPFAIL, true, 'The client did not send its request in time'),
  SHIFTER_TOO_MANY_CONNECTIONS: e(503, ExitCode.TEMPFAIL, true, 'The client address has too many open connections'),

  // config
  SHIFTER_CONFIG_INVALID: e(500, ExitCode.CONFIG, false, 'The configuration is invalid'),
  SHIFTER_CONFIG_NOT_FOUND: e(500, ExitCode.CONFIG, false, 'The configuration file does not exist or cannot be read'),
  SHIFTER_CONFIG_INSECURE: e(500, ExitCode.CONFIG, false, 'The configuration file has unsafe ownership or permissions'),

  // authentication / authorisation
  SHIFTER_AUTH_REQUIRED: e(401, ExitCode.NOPERM, false, 'Credentials are required'),
  SHIFTER_AUTH_INVALID: e(401, ExitCode.NOPERM, false, 'The credential is invalid'),
  SHIFTER_AUTH_EXPIRED: e(401, ExitCode.NOPERM, false, 'The credential has expired'),
  SHIFTER_AUTH_REPLAYED: e(401, ExitCode.NOPERM, false, 'The credential was already used'),
  SHIFTER_AUTH_FORBIDDEN: e(403, ExitCode.NOPERM, false, 'The caller is not allowed to do this'),
  SHIFTER_AUTH_UNAVAILABLE: e(503, ExitCode.UNAVAILABLE, true, 'The authentication service (munged) is unavailable'),

  // images / jobs
  SHIFTER_IMAGE_NOT_FOUND: e(404, ExitCode.NOINPUT, false, 'No such image on this system'),
  SHIFTER_JOB_CONFLICT: e(409, ExitCode.TEMPFAIL, true, 'A conflicting operation on this image is in progress'),
  SHIFTER_JOB_LEASE_EXPIRED: e(500, ExitCode.TEMPFAIL, true, 'The worker running this job stopped before finishing it'),
  SHIFTER_JOB_ATTEMPTS_EXHAUSTED: e(500, ExitCode.TEMPFAIL, false, 'The job failed on every allowed attempt'),
  SHIFTER_JOB_NOT_FOUND: e(404, ExitCode.NOINPUT, false, 'No such job'),
  SHIFTER_IMPORT_NOT_ALLOWED: e(403, ExitCode.NOPERM, false, 'The caller may not import images'),
  SHIFTER_IMPORT_INVALID: e(422, ExitCode.DATAERR, false, 'The file to import is not a valid, safe image'),
  SHIFTER_EXAMINATION_FAILED: e(422, ExitCode.DATAERR, false, 'The site examiner rejected the image'),
  SHIFTER_IMPORT_TIMEOUT: e(504, ExitCode.TEMPFAIL, false, 'Reading the file to import took longer than allowed'),
  SHIFTER_JOB_WORKER_LOST: e(
    500,
    ExitCode.TEMPFAIL,
    false,
    'The worker died while running this job, on every allowed attempt',
  ),
  SHIFTER_JOB_PAYLOAD_INVALID: e(500, ExitCode.SOFTWARE, false, 'A job carried a payload its kind does not accept'),

  // registry
  SHIFTER_REGISTRY_UNAVAILABLE: e(502, ExitCode.UNAVAILABLE, true, 'The registry could not be reached or failed'),
  SHIFTER_REGISTRY_RATE_LIMITED: e(503, ExitCode.TEMPFAIL, true, 'The registry is rate limiting requests'),
  SHIFTER_REGISTRY_AUTH_FAILED: e(401, ExitCode.NOPERM, false, 'The registry refused the credentials'),
  SHIFTER_REGISTRY_DENIED: e(403, ExitCode.NOPERM, false, 'The registry denied access to the repository'),
  SHIFTER_REGISTRY_MANIFEST_UNKNOWN: e(404, ExitCode.NOINPUT, false, 'The registry has no such tag or manifest'),
  SHIFTER_REGISTRY_NAME_UNKNOWN: e(404, ExitCode.NOINPUT, false, 'The registry has no such repository'),
  SHIFTER_REGISTRY_BLOB_UNKNOWN: e(502, ExitCode.UNAVAILABLE, false, 'The registry has no such blob'),
  SHIFTER_REGISTRY_PROTOCOL: e(
    502,
    ExitCode.PROTOCOL,
    false,
    'The registry answered something that breaks the protocol',
  ),
  SHIFTER_REGISTRY_INSECURE_REFUSED: e(
    400,
    ExitCode.USAGE,
    false,
    'Plain HTTP is allowed only for loopback or explicitly insecure registries',
  ),
  SHIFTER_REGISTRY_NOT_ALLOWED: e(403, ExitCode.NOPERM, false, 'The site does not allow pulls from this registry'),

  // manifests / content
  SHIFTER_MANIFEST_UNSUPPORTED: e(
    422,
    ExitCode.DATAERR,
    false,
    'The manifest type is not supported (e.g. Docker schema 1)',
  ),
  SHIFTER_MANIFEST_INVALID: e(422, ExitCode.DATAERR, false, 'The manifest or image config is malformed'),
  SHIFTER_PLATFORM_NOT_FOUND: e(
    404,
    ExitCode.NOINPUT,
    false,
    'The image index has no manifest for the requested platform',
  ),
  SHIFTER_DIGEST_INVALID: e(400, ExitCode.DATAERR, false, 'A digest is malformed or uses an unsupported algorithm'),
  SHIFTER_DIGEST_MISMATCH: e(502, ExitCode.DATAERR, true, 'Downloaded content does not match its digest or size'),
  SHIFTER_BLOB_UNPROVEN: e(
    502,
    ExitCode.DATAERR,
    false,
    'The registry did not prove that it serves the bytes of a blob the cache holds',
  ),
  SHIFTER_SIZE_LIMIT: e(422, ExitCode.DATAERR, false, 'Content is larger than the configured limit'),

  // layers
  SHIFTER_LAYER_UNSAFE_PATH: e(422, ExitCode.DATAERR, false, 'A layer entry names a path outside the image root'),
  SHIFTER_LAYER_UNSAFE_LINK: e(
    422,
    ExitCode.DATAERR,
    false,
    'A layer hardlink or symlink would write outside the image root',
  ),
  SHIFTER_LAYER_INVALID_WHITEOUT: e(
    422,
    ExitCode.DATAERR,
    false,
    'A whiteout names ".", ".." or a path outside the image',
  ),
  SHIFTER_LAYER_CORRUPT: e(422, ExitCode.DATAERR, false, 'A layer is not a valid (compressed) tar archive'),
  SHIFTER_LAYER_UNSUPPORTED: e(422, ExitCode.DATAERR, false, 'A layer media type or entry type is not supported'),
  SHIFTER_LAYER_LIMIT: e(422, ExitCode.DATAERR, false, 'The image unpacks to more bytes or entries than allowed'),

  // conversion / transfer / storage
  SHIFTER_TOOL_NOT_FOUND: e(500, ExitCode.UNAVAILABLE, false, 'A required external tool is not installed'),
  SHIFTER_CONVERSION_FAILED: e(500, ExitCode.SOFTWARE, false, 'Building the squashfs image failed'),
  SHIFTER_TRANSFER_FAILED: e(502, ExitCode.IOERR, true, 'Copying the image to the system failed'),
  SHIFTER_STORE_UNAVAILABLE: e(503, ExitCode.UNAVAILABLE, true, 'The metadata store or queue is unavailable'),
  SHIFTER_STORE_FOREIGN_DATA: e(
    500,
    ExitCode.CONFIG,
    false,
    "The metadata store's collections hold another program's records (upstream Shifter's)",
  ),
  SHIFTER_STORE_SCHEMA_NEWER: e(
    503,
    ExitCode.CONFIG,
    false,
    'The metadata store was written by a newer Shifter: upgrade, or restore the backup',
  ),
  SHIFTER_IO_FAILED: e(500, ExitCode.IOERR, true, 'A local file operation failed'),
  SHIFTER_BLOB_NOT_FOUND: e(404, ExitCode.NOINPUT, false, 'The blob is not in the local blob cache'),
  SHIFTER_NO_SPACE: e(507, ExitCode.CANTCREAT, false, 'A file system of the gateway is full'),

  // gateway client
  SHIFTER_GATEWAY_UNAVAILABLE: e(503, ExitCode.UNAVAILABLE, true, 'No image gateway could be reached'),
  SHIFTER_GATEWAY_PROTOCOL: e(502, ExitCode.PROTOCOL, false, 'The gateway answered something unexpected'),

  // meta
  SHIFTER_META_INVALID: e(422, ExitCode.DATAERR, false, 'A .meta file is malformed'),

  // fallback
  SHIFTER_INTERNAL: e(500, ExitCode.SOFTWARE, false, 'An unexpected internal error'),
} as const satisfies Record<string, ErrorCatalogEntry>;

/** Every stable error code. */
export type ErrorCode = keyof typeof ERROR_CATALOG;

/** All codes, in catalogue order. */
export const ERROR_CODES = Object.keys(ERROR_CATALOG) as ErrorCode[];

/**
 * Look up a code's catalogue row. Unknown codes map to `SHIFTER_INTERNAL`'s row.
 * @param code - an error code, possibly from another version of Shifter
 */
export function lookupErrorCode(code: string): ErrorCatalogEntry {
  return (ERROR_CATALOG as Record<string, ErrorCatalogEntry>)[code] ?? ERROR_CATALOG.SHIFTER_INTERNAL;
}
