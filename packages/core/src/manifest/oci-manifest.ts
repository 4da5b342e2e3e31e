import { z } from 'zod';
import { descriptorSchema, type Descriptor } from './descriptor.js';
import { invalidManifest } from './manifest-error.js';
import { MediaType } from './media-types.js';

/** An OCI image manifest (image-spec manifest.md). */
export interface OciManifest {
  kind: 'oci-manifest';
  /** Always {@link MediaType.OCI_MANIFEST}, whether or not the body carried it. */
  mediaType: typeof MediaType.OCI_MANIFEST;
  schemaVersion: 2;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

const schema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.OCI_MANIFEST).optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema).max(4096),
  annotations: z.record(z.string(), z.string()).optional(),
});

/**
 * Validate a parsed OCI image manifest.
 * @param json - the manifest's JSON value
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_INVALID`
 */
export function parseOciManifest(json: unknown): OciManifest {
  const result = schema.safeParse(json);
  if (!result.success) throw invalidManifest('OCI image manifest', result.error);
  const { config, layers, annotations } = result.data;
  return {
    kind: 'oci-manifest',
    mediaType: MediaType.OCI_MANIFEST,
    schemaVersion: 2,
    config,
    layers,
    ...(annotations ? { annotations } : {}),
  };
}
