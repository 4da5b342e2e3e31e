import type { GatewayImage } from '@shifter/core';
import { BaseCommand } from '../base-command.js';
import { formatImagesTable } from '../format.js';

/** `--json` result of `images`. */
export interface ImagesResult {
  /** System the list is for. */
  system: string;
  /** READY images the caller may use. */
  images: GatewayImage[];
}

/** `shifterimg images`: the READY images of this system. */
export class Images extends BaseCommand {
  static override summary = 'List the images ready to use on this system.';
  static override description =
    'Prints one row per tag, sorted by tag: system, type, status, the first 10 characters of the image id, the time of the last pull and the tag. Private images appear only to users allowed to use them.';
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json'];

  async run(): Promise<ImagesResult> {
    const { flags } = await this.parse(Images);
    const settings = await this.settings(flags);
    const images = await this.client(settings).list();
    this.debugJson('list', images);
    if (!this.jsonEnabled()) process.stdout.write(formatImagesTable(images));
    return { system: settings.system, images };
  }
}
