import { ManifestError } from '../errors/index.js';
import type { Descriptor } from './descriptor.js';
import { parseDockerManifestList, type DockerManifestList } from './docker-list.js';
import { parseDockerManifest, type DockerManifest } from './docker-schema2.js';
import {
  CONFIG_TYPES,
  FOREIGN_LAYER_TYPES,
  LAYER_COMPRESSION,
  MediaType,
  mediaTypeOfContentType,
} from './media-types.js';
import { parseOciIndex, type OciIndex } from './oci-index.js';
import { parseOciManifest, type OciManifest } from './oci-manifest.js';

/** A single-platform image manifest. */
export type ImageManifest = OciManifest | DockerManifest;
/** A multi-platform index. */
export type ImageIndex = OciIndex | DockerManifestList;
/** Anything a manifest endpoint may answer that Shifter handles. */
export type Manifest = ImageManifest | ImageIndex;

const SCHEMA1_TYPES = new Set<string>([MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED]);

function unsupported(message: string, details: Record<string, unknown>): ManifestError {
  return new ManifestError('SHIFTER_MANIFEST_UNSUPPORTED', message, { details });
}

/**
 * Parse manifest bytes as a registry served them.
 *
 * The media type comes from the body's `mediaType` when present (it is signed by the digest), else from the
 * response `Content-Type` (OCI makes `mediaType` optional and umoci omits it), else from the shape of the JSON.
 * The bytes are not hashed here: the caller hashes exactly what it received.
 *
 * @param bytes - the raw body
 * @param contentType - the response's `Content-Type` header, if any
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_UNSUPPORTED` for Docker schema 1 and unknown types;
 *   `SHIFTER_MANIFEST_INVALID` for malformed JSON or fields
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', `manifest is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', 'manifest is not a JSON object');
  }
  const body = json as Record<string, unknown>;
  const headerType = mediaTypeOfContentType(contentType);
  if (
    body.schemaVersion === 1 ||
    SCHEMA1_TYPES.has(String(body.mediaType)) ||
    (headerType !== undefined && SCHEMA1_TYPES.has(headerType))
  ) {
    throw unsupported(
      'Docker schema 1 manifests are obsolete and not supported; push the image again with a current client',
      {
        mediaType: body.mediaType ?? headerType,
      },
    );
  }
  let mediaType = typeof body.mediaType === 'string' ? body.mediaType : headerType;
  if (
    mediaType === undefined ||
    mediaType === 'application/json' ||
    mediaType === 'text/plain' ||
    mediaType === 'application/octet-stream'
  ) {
    // Generic or missing types: OCI lets us infer from the required fields.
    if (Array.isArray(body.manifests)) mediaType = MediaType.OCI_INDEX;
    else if (body.config !== undefined && Array.isArray(body.layers)) mediaType = MediaType.OCI_MANIFEST;
  }
  switch (mediaType) {
    case MediaType.OCI_MANIFEST:
      return parseOciManifest(body);
    case MediaType.DOCKER_MANIFEST:
      return parseDockerManifest(body);
    case MediaType.OCI_INDEX:
      return parseOciIndex(body);
    case MediaType.DOCKER_MANIFEST_LIST:
      return parseDockerManifestList(body);
    default:
      throw unsupported(`unsupported manifest media type ${JSON.stringify(mediaType ?? '(none)')}`, { mediaType });
  }
}

/** Whether a parsed manifest is a multi-platform index. */
export function isImageIndex(manifest: Manifest): manifest is ImageIndex {
  return manifest.kind === 'oci-index' || manifest.kind === 'docker-list';
}

/**
 * Check that an image manifest describes something Shifter can build: a known config type and layers that are
 * distributable, of a known type, and within the size cap.
 *
 * @param manifest - a single-platform manifest
 * @param maxLayerBytes - largest compressed layer accepted
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_UNSUPPORTED` for foreign/non-distributable layers, unknown layer or
 *   config types (artifacts, Helm charts…); `SHIFTER_SIZE_LIMIT` for an oversized layer
 */
export function checkImageManifest(manifest: ImageManifest, maxLayerBytes = Number.MAX_SAFE_INTEGER): void {
  if (!CONFIG_TYPES.has(manifest.config.mediaType)) {
    throw unsupported(
      `config media type ${JSON.stringify(manifest.config.mediaType)} is not a container image config (artifact?)`,
      {
        mediaType: manifest.config.mediaType,
      },
    );
  }
  manifest.layers.forEach((layer: Descriptor, index) => {
    if (FOREIGN_LAYER_TYPES.has(layer.mediaType) || (layer.urls !== undefined && layer.urls.length > 0)) {
      throw unsupported(
        `layer ${index} (${layer.digest}) is a foreign/non-distributable layer (${layer.mediaType}); Shifter only pulls content the registry itself serves`,
        { layer: layer.digest, mediaType: layer.mediaType, urls: layer.urls ?? [] },
      );
    }
    if (!(layer.mediaType in LAYER_COMPRESSION)) {
      throw unsupported(
        `layer ${index} (${layer.digest}) has unsupported media type ${JSON.stringify(layer.mediaType)}`,
        {
          layer: layer.digest,
          mediaType: layer.mediaType,
        },
      );
    }
    if (layer.size > maxLayerBytes) {
      throw new ManifestError(
        'SHIFTER_SIZE_LIMIT',
        `layer ${index} (${layer.digest}) is ${layer.size} bytes, over the limit of ${maxLayerBytes}`,
        {
          details: { layer: layer.digest, size: layer.size, limit: maxLayerBytes },
        },
      );
    }
  });
}
