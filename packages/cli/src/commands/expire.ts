import * as Args from '@oclif/core/args';
import { BaseCommand } from '../base-command.js';
import { parseImageArgument } from '../image-argument.js';

/** `--json` result of `expire`. */
export interface ExpireResult {
  /** Image type. */
  type: string;
  /** Image tag. */
  tag: string;
  /** True when the gateway started removing the image. */
  status: boolean;
}

/** `shifterimg expire` (administrators): remove an image from this system. */
export class Expire extends BaseCommand {
  static override summary = 'Remove an image from this system (administrators).';
  static override description =
    'Asks the gateway to expire TYPE:TAG on this system; the image files are removed in the background. Only the administrators of the system may do this. Prints nothing on success, as upstream.';
  static override examples = ['<%= config.bin %> <%= command.id %> docker:ubuntu:22.04'];
  static override args = {
    image: Args.string({ ignoreStdin: true, description: 'TYPE:TAG or TAG', required: true }),
  };

  async run(): Promise<ExpireResult> {
    const { args, flags } = await this.parse(Expire);
    const settings = await this.settings(flags);
    const { type, tag } = parseImageArgument(args.image, settings.defaultImageType);
    const result = await this.client(settings).expire(type, tag);
    this.debugJson('expire', result);
    return { type, tag, status: result.status };
  }
}
