/** Media types Shifter reads from registries (OCI image-spec and Docker image-manifest v2 schema 2). */
export const MediaType = {
  OCI_MANIFEST: 'application/vnd.oci.image.manifest.v1+json',
  OCI_INDEX: 'application/vnd.oci.image.index.v1+json',
  OCI_CONFIG: 'application/vnd.oci.image.config.v1+json',
  OCI_LAYER: 'application/vnd.oci.image.layer.v1.tar',
  OCI_LAYER_GZIP: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OCI_LAYER_ZSTD: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OCI_LAYER_NONDISTRIBUTABLE: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OCI_LAYER_NONDISTRIBUTABLE_GZIP: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OCI_LAYER_NONDISTRIBUTABLE_ZSTD: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  DOCKER_MANIFEST: 'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_MANIFEST_LIST: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DOCKER_CONFIG: 'application/vnd.docker.container.image.v1+json',
  DOCKER_LAYER: 'application/vnd.docker.image.rootfs.diff.tar',
  DOCKER_LAYER_GZIP: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DOCKER_LAYER_FOREIGN_GZIP: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DOCKER_SCHEMA1: 'application/vnd.docker.distribution.manifest.v1+json',
  DOCKER_SCHEMA1_SIGNED: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** Manifest and index types, most preferred first; sent as the `Accept` header of manifest requests. */
export const ACCEPTED_MANIFEST_TYPES: readonly string[] = [
  MediaType.OCI_INDEX,
  MediaType.DOCKER_MANIFEST_LIST,
  MediaType.OCI_MANIFEST,
  MediaType.DOCKER_MANIFEST,
];

/** Layer types the converter can apply, with their compression. */
export const LAYER_COMPRESSION: Readonly<Record<string, 'gzip' | 'zstd' | 'none'>> = {
  [MediaType.OCI_LAYER]: 'none',
  [MediaType.OCI_LAYER_GZIP]: 'gzip',
  [MediaType.OCI_LAYER_ZSTD]: 'zstd',
  [MediaType.DOCKER_LAYER]: 'none',
  [MediaType.DOCKER_LAYER_GZIP]: 'gzip',
};

/** Layer types whose content a registry may not serve (URLs elsewhere, licences); Shifter refuses them. */
export const FOREIGN_LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaType.OCI_LAYER_NONDISTRIBUTABLE,
  MediaType.OCI_LAYER_NONDISTRIBUTABLE_GZIP,
  MediaType.OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
  MediaType.DOCKER_LAYER_FOREIGN_GZIP,
]);

/** Image config types Shifter reads. */
export const CONFIG_TYPES: ReadonlySet<string> = new Set([MediaType.OCI_CONFIG, MediaType.DOCKER_CONFIG]);

/**
 * The media type of a `Content-Type` header value, parameters and case removed.
 * @param header - e.g. `application/vnd.oci.image.index.v1+json; charset=utf-8`
 */
export function mediaTypeOfContentType(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const type = header.split(';', 1)[0]!.trim().toLowerCase();
  return type.length > 0 ? type : undefined;
}
