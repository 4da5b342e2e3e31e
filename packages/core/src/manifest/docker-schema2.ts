import { z } from 'zod';
import { descriptorSchema, type Descriptor } from './descriptor.js';
import { invalidManifest } from './manifest-error.js';
import { MediaType } from './media-types.js';

/** A Docker image manifest v2, schema 2. */
export interface DockerManifest {
  kind: 'docker-manifest';
  mediaType: typeof MediaType.DOCKER_MANIFEST;
  schemaVersion: 2;
  config: Descriptor;
  layers: Descriptor[];
}

const schema = z.looseObject({
  schemaVersion: z.literal(2),
  // Docker's format requires mediaType in the body; registries also send it as Content-Type, which is how we got here
  // when the body lacks it, so it is tolerated as optional.
  mediaType: z.literal(MediaType.DOCKER_MANIFEST).optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema).max(4096),
});

/**
 * Validate a parsed Docker schema 2 manifest.
 * @param json - the manifest's JSON value
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_INVALID`
 */
export function parseDockerManifest(json: unknown): DockerManifest {
  const result = schema.safeParse(json);
  if (!result.success) throw invalidManifest('Docker schema 2 manifest', result.error);
  return {
    kind: 'docker-manifest',
    mediaType: MediaType.DOCKER_MANIFEST,
    schemaVersion: 2,
    config: result.data.config,
    layers: result.data.layers,
  };
}
