import * as Args from '@oclif/core/args';
import { type GatewayImage, NotFoundError, ShifterError } from '@shifter/core';
import { BaseCommand } from '../base-command.js';
import { parseImageArgument } from '../image-argument.js';

/** `shifterimg lookup`: the id of a READY image, as the runtime asks for it. */
export class Lookup extends BaseCommand {
  static override summary = 'Print the id of a ready image.';
  static override description =
    'Resolves TYPE:TAG (or TAG, with the defaultImageType of udiRoot.conf) to the id of the READY image on this system and prints the id only. Each lookup also keeps the image from expiring.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> docker:ubuntu:22.04',
    '<%= config.bin %> <%= command.id %> 127.0.0.1:5000/test/busybox:latest',
    '<%= config.bin %> <%= command.id %> ubuntu:22.04 --json',
  ];
  static override args = {
    image: Args.string({ description: 'TYPE:TAG or TAG, e.g. docker:ubuntu:22.04', required: true }),
  };

  async run(): Promise<GatewayImage> {
    const { args, flags } = await this.parse(Lookup);
    const settings = await this.settings(flags);
    const { type, tag } = parseImageArgument(args.image, settings.defaultImageType);
    let image: GatewayImage;
    try {
      image = await this.client(settings).lookup(type, tag);
    } catch (error) {
      if (ShifterError.isInstance(error) && error.code === 'SHIFTER_IMAGE_NOT_FOUND') {
        throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `image ${type}:${tag} not found on system ${settings.system}: pull it with "shifterimg pull ${type}:${tag}"`, {
          cause: error,
          details: { ...error.details, type, tag, system: settings.system },
        });
      }
      throw error;
    }
    this.debugJson('lookup', image);
    if (!this.jsonEnabled()) process.stdout.write(`${image.id}\n`);
    return image;
  }
}
