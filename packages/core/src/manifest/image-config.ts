import { z } from 'zod';
import { ManifestError } from '../errors/index.js';
import { invalidManifest } from './manifest-error.js';

/** The parts of an OCI/Docker image config Shifter reads; other fields are kept as received. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: {
    Env?: string[] | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
    [key: string]: unknown;
  } | null;
  rootfs?: { type: string; diff_ids: string[] };
  [key: string]: unknown;
}

const stringList = z.array(z.string()).nullable().optional();
const schema = z.looseObject({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .looseObject({
      Env: stringList,
      Entrypoint: stringList,
      Cmd: stringList,
      WorkingDir: z.string().optional(),
      User: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullable().optional(),
    })
    .nullable()
    .optional(),
  rootfs: z.looseObject({ type: z.string(), diff_ids: z.array(z.string()) }).optional(),
});

/**
 * Parse and validate image config bytes (already digest-verified by the caller).
 * @param bytes - the config blob
 * @param layerCount - number of layers in the manifest; `rootfs.diff_ids` must have as many entries when present
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_INVALID`
 */
export function parseImageConfig(bytes: Uint8Array, layerCount?: number): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', `image config is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const result = schema.safeParse(json);
  if (!result.success) throw invalidManifest('image config', result.error);
  const config = result.data as ImageConfig;
  if (layerCount !== undefined && config.rootfs && config.rootfs.diff_ids.length !== layerCount) {
    throw new ManifestError(
      'SHIFTER_MANIFEST_INVALID',
      `image config lists ${config.rootfs.diff_ids.length} layer diff_ids but the manifest has ${layerCount} layers`,
      { details: { diffIds: config.rootfs.diff_ids.length, layers: layerCount } },
    );
  }
  return config;
}
