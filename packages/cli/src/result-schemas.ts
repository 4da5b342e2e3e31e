import { ErrorResponseSchema, ImageResponseSchema, QueueResponseSchema, StatusResponseSchema } from '@shifter/core';
import { z } from 'zod';

// The `--json` output of every command, as zod schemas built on the gateway's route contract. They are not used at
// run time (the CLI must not load zod on start-up); scripts/generate-schemas.ts turns them into schemas/*.json and
// the tests validate real output against those files.

const QueueEntrySchema = QueueResponseSchema.shape.list.element;

/** Output schema of each command under `--json`, plus `error` for the error envelope. */
export const RESULT_SCHEMAS = {
  autoexpire: z.object({ expired: z.array(z.string()).describe('Ids of the images expired') }).strict(),
  error: ErrorResponseSchema.extend({ details: z.record(z.string(), z.unknown()) }).strict(),
  expire: z
    .object({ type: z.string(), tag: z.string(), status: z.boolean().describe('True when the expiry started') })
    .strict(),
  images: z.object({ system: z.string(), images: z.array(ImageResponseSchema) }).strict(),
  import: ImageResponseSchema,
  login: z
    .object({
      system: z.string(),
      location: z.string(),
      username: z.string(),
      file: z.string().describe('The login store (the password is never printed)'),
    })
    .strict(),
  lookup: ImageResponseSchema,
  pull: ImageResponseSchema,
  pullnb: ImageResponseSchema,
  queue: z.object({ system: z.string(), queue: z.array(QueueEntrySchema) }).strict(),
  status: StatusResponseSchema,
} as const;

/** Name of a schema file in `schemas/` (without `.json`). */
export type ResultSchemaName = keyof typeof RESULT_SCHEMAS;

/**
 * The JSON Schema document of one output.
 * @param name - command name or `error`
 */
export function resultJsonSchema(name: ResultSchemaName): Record<string, unknown> {
  const schema = z.toJSONSchema(RESULT_SCHEMAS[name], { io: 'output', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
  return {
    $id: `https://shifter.invalid/schemas/cli/${name}.json`,
    title: `shifterimg ${name === 'error' ? 'error envelope' : name} --json`,
    ...schema,
  };
}
