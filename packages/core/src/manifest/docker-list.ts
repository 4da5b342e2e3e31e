import { z } from 'zod';
import { descriptorSchema, type Descriptor } from './descriptor.js';
import { invalidManifest } from './manifest-error.js';
import { MediaType } from './media-types.js';

/** A Docker manifest list (multi-platform, schema 2). */
export interface DockerManifestList {
  kind: 'docker-list';
  mediaType: typeof MediaType.DOCKER_MANIFEST_LIST;
  schemaVersion: 2;
  manifests: Descriptor[];
}

const schema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MediaType.DOCKER_MANIFEST_LIST).optional(),
  manifests: z.array(descriptorSchema).max(4096),
});

/**
 * Validate a parsed Docker manifest list.
 * @param json - the list's JSON value
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_INVALID`
 */
export function parseDockerManifestList(json: unknown): DockerManifestList {
  const result = schema.safeParse(json);
  if (!result.success) throw invalidManifest('Docker manifest list', result.error);
  return {
    kind: 'docker-list',
    mediaType: MediaType.DOCKER_MANIFEST_LIST,
    schemaVersion: 2,
    manifests: result.data.manifests,
  };
}
