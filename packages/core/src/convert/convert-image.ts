import { ConversionError } from '../errors/index.js';
import type { ConvertImageOptions, ConvertImageResult, LayerSource } from './convert-types.js';

/**
 * Turn an image's layers and config into `<outDir>/<id>.squashfs` and `<outDir>/<id>.meta`.
 *
 * @param layers - the platform manifest's layers, lowest first
 * @param imageConfig - the parsed image config JSON
 * @param outDir - directory receiving the two files
 * @param options - id, scratch directory, conversion settings, limits, ACLs
 */
export async function convertImage(
  layers: LayerSource[],
  imageConfig: unknown,
  outDir: string,
  options: ConvertImageOptions,
): Promise<ConvertImageResult> {
  void layers;
  void imageConfig;
  void outDir;
  void options;
  throw new ConversionError('SHIFTER_CONVERSION_FAILED', 'convertImage is being implemented');
}
