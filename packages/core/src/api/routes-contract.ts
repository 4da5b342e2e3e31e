/**
 * The REST contract of the Image Gateway, shared by the gateway (validation, OpenAPI) and `GatewayClient`.
 *
 * Paths and JSON field names are upstream Shifter's, so upstream `shifterimg` and scripts that curl the API keep
 * working. Where this gateway answers differently on purpose (status codes, `/api/queue` needing credentials),
 * docs/upstream-differences.md lists it.
 *
 * @packageDocumentation
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../errors/index.js';
import { IMAGE_STATUSES } from '../metadata/image-record.js';

/** Image state schema (the states of {@link IMAGE_STATUSES}). */
export const ImageStateSchema = z.enum(IMAGE_STATUSES);

/** Placeholder upstream sends for a field that is not known yet (e.g. `ENTRY` during a pull). */
export const MISSING_FIELD = 'MISSING';

/** Image type path segment: `docker` (registry images) or `custom` (imports); upstream accepts others as given. */
export const ImageTypeSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'image type must be a short lower-case word such as docker or custom')
  .describe('Image type: docker for registry images, custom for imports');

/** System name path segment (same rule as config keys). */
export const SystemNameSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'system name has invalid characters');

/**
 * The image response: exactly upstream's fields (`id, system, itype, tag, status, userACL, groupACL, ENV, ENTRY,
 * WORKDIR, LABELS, last_pull, status_message`), plus `code` on FAILURE. Unknown values are `"MISSING"` as upstream.
 */
export const ImageResponseSchema = z
  .object({
    id: z
      .string()
      .describe('Image id: sha256 hex of the platform manifest (pull) or of the file (import); MISSING while pulling'),
    system: z.string(),
    itype: z.string(),
    tag: z.array(z.string()).describe('Every tag that points at this image on this system'),
    status: ImageStateSchema,
    userACL: z.array(z.number().int()),
    groupACL: z.array(z.number().int()),
    ENV: z.union([z.array(z.string()), z.literal(MISSING_FIELD)]),
    ENTRY: z.union([z.array(z.string()), z.string()]),
    WORKDIR: z.string(),
    LABELS: z.union([z.record(z.string(), z.string()), z.literal(MISSING_FIELD)]),
    last_pull: z.number().describe('Seconds since the epoch of the last pull'),
    status_message: z.string().describe('Progress (layer n/m, bytes done/total) or, on FAILURE, "CODE: message"'),
    code: z.string().optional().describe('On FAILURE: the error catalogue code'),
  })
  .describe('An image record as upstream reports it');

/** An image as the API returns it. */
export type ImageResponse = z.infer<typeof ImageResponseSchema>;

/** Body of `GET /api/list/{system}/`. */
export const ListResponseSchema = z.object({ list: z.array(ImageResponseSchema) });
/** `GET /api/list` answer. */
export type ListResponse = z.infer<typeof ListResponseSchema>;

/**
 * ACL list field: upstream clients send comma-separated strings (`"1000,1001"`); arrays of integers are accepted
 * too. Ids must be non-negative 32-bit integers.
 */
export const AclFieldSchema = z
  .union([
    z
      .string()
      .max(8192)
      .regex(/^\s*(\d{1,10}\s*(,\s*\d{1,10}\s*)*)?,?\s*$/, 'expected comma-separated numeric ids'),
    z.array(z.number().int().min(0).max(0xffffffff)).max(1024),
  ])
  .transform((value) =>
    typeof value === 'string'
      ? value
          .split(',')
          .map((part) => part.trim())
          .filter(Boolean)
          .map(Number)
      : value,
  )
  .refine(
    (ids) => ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 0xffffffff),
    'ids must be 32-bit unsigned integers',
  );

/** Body of `POST /api/pull/{system}/{type}/{tag}/` (optional). */
export const PullRequestBodySchema = z
  .object({
    allowed_uids: AclFieldSchema.optional(),
    allowed_gids: AclFieldSchema.optional(),
  })
  .loose();
/** Parsed pull body. */
export type PullRequestBody = z.output<typeof PullRequestBodySchema>;

/** Body of `POST /api/doimport/{system}/{type}/{tag}/`. */
export const ImportRequestBodySchema = z
  .object({
    filepath: z.string().min(1).max(4096).startsWith('/', 'filepath must be absolute'),
    format: z.literal('squashfs').default('squashfs'),
    allowed_uids: AclFieldSchema.optional(),
    allowed_gids: AclFieldSchema.optional(),
  })
  .loose();
/** Parsed import body. */
export type ImportRequestBody = z.output<typeof ImportRequestBodySchema>;

/** Body of `GET /api/expire/…` (admin): true when expiry started. Non-admins get 403, unknown images 404. */
export const ExpireResponseSchema = z.object({ status: z.boolean() });
/** Body of `GET /api/autoexpire/{system}/` (admin): the ids expired. */
export const AutoexpireResponseSchema = z.object({ status: z.array(z.string()) });

/** One lookup metrics row. */
export const MetricsRowSchema = z.object({
  user: z.string(),
  uid: z.number().int(),
  system: z.string(),
  type: z.string(),
  tag: z.string(),
  id: z.string(),
  time: z.number(),
});
/** Body of `GET /api/metrics/{system}/?limit=N` (admin): newest rows last, as upstream. */
export const MetricsResponseSchema = z.array(MetricsRowSchema);
/** Query of the metrics route. */
export const MetricsQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(10) });

/** Body of `GET /api/queue/{system}/`: images still being worked on. */
export const QueueResponseSchema = z.object({
  list: z.array(z.object({ status: ImageStateSchema, image: z.string(), status_message: z.string().optional() })),
});

/** Body of `GET /api/status` (no credentials needed, no image data). */
export const StatusResponseSchema = z.object({
  status: z.literal('up'),
  version: z.string(),
  systems: z.array(z.string()).describe('Names of configured systems'),
});

/**
 * The error body: upstream's `status`, `error` and `message` plus the catalogue `code` and client-safe `details`.
 * `error` repeats the code so upstream clients printing `error` show something stable.
 */
export const ErrorResponseSchema = z.object({
  status: z.number().int(),
  error: z.string(),
  code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
/** An error answer. */
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

/** Name of the request header holding the munge credential (upstream's). */
export const GATEWAY_AUTH_HEADER = 'authentication';

/** Route paths in fastify syntax; `{tag}` may hold `/` and `:` and is sent URL-escaped by clients. */
export const GATEWAY_ROUTES = {
  status: '/api/status',
  list: '/api/list/:system/',
  lookup: '/api/lookup/:system/:type/*',
  pull: '/api/pull/:system/:type/*',
  doimport: '/api/doimport/:system/:type/*',
  expire: '/api/expire/:system/:type/*',
  autoexpire: '/api/autoexpire/:system/',
  metrics: '/api/metrics/:system/',
  queue: '/api/queue/:system/',
} as const;

/**
 * Build the client-side path of an image route, URL-escaping the tag as upstream clients do.
 * @param route - `lookup`, `pull`, `doimport` or `expire`
 * @param system - system name
 * @param type - image type (`docker`, `custom`)
 * @param tag - image tag, e.g. `ubuntu:22.04` or `registry:5000/x/y:1`
 */
export function imageRoutePath(
  route: 'lookup' | 'pull' | 'doimport' | 'expire',
  system: string,
  type: string,
  tag: string,
): string {
  return `/api/${route}/${encodeURIComponent(system)}/${encodeURIComponent(type)}/${encodeURIComponent(tag)}/`;
}
