import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { GatewayImage } from '@shifter/core';
import { isAbsolute, resolve } from 'node:path';
import { BaseCommand } from '../base-command.js';
import { parseImageArgument } from '../image-argument.js';
import { resolveIds } from '../resolve-ids.js';

/** `shifterimg import`: register a squashfs file you built as an image. */
export class Import extends BaseCommand {
  static override summary = 'Import a squashfs file as an image (users allowed by the gateway).';
  static override description = [
    'Asks the gateway to import FILE, a squashfs image readable by the gateway, under TYPE:TAG (TAG alone means custom:TAG). Only users listed in the importUsers setting of the gateway may import.',
    'Prints the state of the import; follow it with "shifterimg queue" and use it once "shifterimg lookup" finds it.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> <%= command.id %> /scratch/me/app.squashfs myapp:1.0',
    '<%= config.bin %> <%= command.id %> /scratch/me/app.squashfs custom:myapp:1.0 --user alice',
  ];
  static override args = {
    file: Args.string({
      ignoreStdin: true,
      description: 'squashfs file to import (made absolute against the current directory)',
      required: true,
    }),
    image: Args.string({ ignoreStdin: true, description: 'TYPE:TAG or TAG (type custom)', required: true }),
  };
  static override flags = {
    user: Flags.string({
      summary: 'Users (names or uids, comma-separated) who may also use the image.',
      helpValue: 'USERS',
      multiple: true,
      multipleNonGreedy: true,
    }),
    group: Flags.string({
      summary: 'Groups (names or gids, comma-separated) who may use the image.',
      helpValue: 'GROUPS',
      multiple: true,
      multipleNonGreedy: true,
    }),
  };

  async run(): Promise<GatewayImage> {
    const { args, flags } = await this.parse(Import);
    const settings = await this.settings(flags);
    const { type, tag } = parseImageArgument(args.image, 'custom');
    const filepath = isAbsolute(args.file) ? args.file : resolve(args.file);
    const allowedUids = await resolveIds(flags.user, 'passwd');
    const allowedGids = await resolveIds(flags.group, 'group');
    const image = await this.client(settings).import(type, tag, { filepath, allowedUids, allowedGids });
    this.debugJson('import', image);
    if (!this.jsonEnabled()) process.stdout.write(`Importing Image: ${type}:${tag}, status: ${image.status}\n`);
    return image;
  }
}
