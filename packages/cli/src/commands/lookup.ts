import * as Args from '@oclif/core/args';
import type { GatewayImage } from '@shifter/core';
import { BaseCommand } from '../base-command.js';
import { lookupImage } from '../lookup-image.js';

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
    image: Args.string({ ignoreStdin: true, description: 'TYPE:TAG or TAG, e.g. docker:ubuntu:22.04', required: true }),
  };

  async run(): Promise<GatewayImage> {
    const { args, flags } = await this.parse(Lookup);
    const settings = await this.settings(flags);
    // NOTE: src/fast-lookup.ts runs the same lookupImage() without oclif; keep output and errors identical.
    const image = await lookupImage(settings, this.client(settings), args.image);
    this.debugJson('lookup', image);
    if (!this.jsonEnabled()) process.stdout.write(`${image.id}\n`);
    return image;
  }
}
