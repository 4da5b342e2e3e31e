import type { z } from 'zod';
import { ManifestError } from '../errors/index.js';

/** Turn a zod failure into `SHIFTER_MANIFEST_INVALID` naming the first bad field. */
export function invalidManifest(what: string, error: z.ZodError): ManifestError {
  const issue = error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return new ManifestError(
    'SHIFTER_MANIFEST_INVALID',
    `${what} is malformed at ${path}: ${issue?.message ?? 'invalid'}`,
    {
      details: { path, issues: error.issues.slice(0, 5).map((i) => ({ path: i.path.join('.'), message: i.message })) },
    },
  );
}
