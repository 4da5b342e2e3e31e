import { z } from 'zod';
import { descriptorSchema, type Descriptor } from './descriptor.js';
import { invalidManifest } from './manifest-error.js';
import { MediaType } from './media-types.js';

/** An OCI image index (image-spec image-index.md). */
export interface OciIndex {
  kind: 'oci-index';
  mediaType: typeof MediaType.OCI_INDEX;
  schemaVersion: 2;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

const schema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.OCI_INDEX).optional(),
  manifests: z.array(descriptorSchema).max(4096),
  annotations: z.record(z.string(), z.string()).optional(),
});

/**
 * Validate a parsed OCI image index.
 * @param json - the index's JSON value
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_INVALID`
 */
export function parseOciIndex(json: unknown): OciIndex {
  const result = schema.safeParse(json);
  if (!result.success) throw invalidManifest('OCI image index', result.error);
  const { manifests, annotations } = result.data;
  return {
    kind: 'oci-index',
    mediaType: MediaType.OCI_INDEX,
    schemaVersion: 2,
    manifests,
    ...(annotations ? { annotations } : {}),
  };
}
