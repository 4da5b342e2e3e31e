/**
 * The payload of each job kind, as zod schemas: checked when a job is enqueued and again when it runs (a payload comes
 * back from the store or the queue backend, which another version of Shifter may have written).
 *
 * @packageDocumentation
 */
import { z } from 'zod';
import { ShifterError } from '../../errors/index.js';
import type { JobKind, JsonValue } from '../../jobs/index.js';

const id = z.string().min(1).max(256);
const numericId = z.number().int().min(0).max(0xffff_ffff);

/** Payload of a `pull` job. */
export const PullPayloadSchema = z.object({
  /** The image record the job drives. */
  recordId: id,
  /** The normalised tag to pull. */
  tag: z.string().min(1).max(1024),
  /** Erased by the store when the job ends (`JOB_SECRETS_KEY`). */
  secrets: z.object({ login: z.object({ username: z.string(), password: z.string() }).optional() }).optional(),
});
/** Payload of a `pull` job. */
export type PullPayload = z.infer<typeof PullPayloadSchema>;

/** Payload of an `import` job. */
export const ImportPayloadSchema = z.object({
  recordId: id,
  tag: z.string().min(1).max(1024),
  /** Absolute path of the file to import. */
  filepath: z
    .string()
    .min(2)
    .max(4096)
    .refine((path) => path.startsWith('/') && !path.includes('\0'), 'must be an absolute path'),
  /** Who the file is read as. */
  caller: z.object({
    uid: numericId,
    gid: numericId,
    groups: z.array(numericId).max(65_536).readonly(),
    user: z.string().min(1).max(256),
  }),
});
/** Payload of an `import` job. */
export type ImportPayload = z.infer<typeof ImportPayloadSchema>;

/** Payload of an `expire` job. */
export const ExpirePayloadSchema = z.object({ recordId: id });
/** Payload of an `expire` job. */
export type ExpirePayload = z.infer<typeof ExpirePayloadSchema>;

/** The payload type of each job kind. */
export interface JobPayloads {
  readonly pull: PullPayload;
  readonly import: ImportPayload;
  readonly expire: ExpirePayload;
}

const SCHEMAS: { readonly [K in JobKind]: z.ZodType<JobPayloads[K]> } = {
  pull: PullPayloadSchema,
  import: ImportPayloadSchema,
  expire: ExpirePayloadSchema,
};

/**
 * Check a job payload against its kind's schema.
 * @returns the payload, typed (unknown members dropped)
 * @throws {@link ShifterError} `SHIFTER_JOB_PAYLOAD_INVALID` (not retryable), naming the offending paths (never the
 *   values: a pull payload may carry a registry password)
 */
export function parseJobPayload<K extends JobKind>(kind: K, payload: JsonValue | unknown): JobPayloads[K] {
  const schema = Object.hasOwn(SCHEMAS, kind) ? SCHEMAS[kind] : undefined;
  if (!schema) throw new ShifterError('SHIFTER_JOB_PAYLOAD_INVALID', `unknown job kind ${JSON.stringify(kind)}`);
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, 10).map((issue) => ({
    path: issue.path.map(String).join('.') || '(payload)',
    message: issue.message,
  }));
  throw new ShifterError(
    'SHIFTER_JOB_PAYLOAD_INVALID',
    `invalid ${kind} job payload: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`,
    { details: { kind, issues } },
  );
}

/** The record id a payload names, if any (for failing the record of a job whose payload is otherwise invalid). */
export function payloadRecordId(payload: JsonValue | unknown): string | undefined {
  const result = z.object({ recordId: id }).safeParse(payload);
  return result.success ? result.data.recordId : undefined;
}
