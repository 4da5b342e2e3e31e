import { type GatewayImage, NotFoundError, ShifterError } from '@shifter/core';
import type { CliConfig } from './cli-config.js';
import { parseImageArgument } from './image-argument.js';
import type { GatewayApi } from './services.js';

/**
 * What `shifterimg lookup` does, shared by the oclif command and the start-up fast path: resolve the argument and
 * ask the gateway, turning "not found" into a message that says how to pull the image.
 * @param settings - client settings
 * @param client - the gateway client
 * @param argument - `TYPE:TAG` or `TAG`
 * @throws ShifterError `SHIFTER_REF_INVALID`, `SHIFTER_IMAGE_NOT_FOUND` and the client's codes
 */
export async function lookupImage(settings: CliConfig, client: GatewayApi, argument: string): Promise<GatewayImage> {
  const { type, tag } = parseImageArgument(argument, settings.defaultImageType);
  try {
    return await client.lookup(type, tag);
  } catch (error) {
    if (ShifterError.isInstance(error) && error.code === 'SHIFTER_IMAGE_NOT_FOUND') {
      throw new NotFoundError(
        'SHIFTER_IMAGE_NOT_FOUND',
        `image ${type}:${tag} not found on system ${settings.system}: pull it with "shifterimg pull ${type}:${tag}"`,
        {
          cause: error,
          details: { ...error.details, type, tag, system: settings.system },
        },
      );
    }
    throw error;
  }
}
