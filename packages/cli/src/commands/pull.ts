import * as Args from '@oclif/core/args';
import * as Flags from '@oclif/core/flags';
import type { GatewayImage } from '@shifter/core';
import { BaseCommand } from '../base-command.js';
import { formatPullLine } from '../format.js';
import { parseImageArgument } from '../image-argument.js';
import { resolveIds } from '../resolve-ids.js';
import { services } from '../services.js';

/** The flags of one pull request, shared by `pull` and `pullnb`. */
interface PullRequestFlags {
  readonly config?: string | undefined;
  readonly verbose?: boolean;
  readonly user?: string[] | undefined;
  readonly group?: string[] | undefined;
}

/** What `pull` and `pullnb` share: reading the request and sending it once. */
abstract class PullCommand extends BaseCommand {
  /** Resolve the image, the ACL ids and the logins, and make the client. */
  protected async request(argument: string, flags: PullRequestFlags) {
    const settings = await this.settings(flags);
    const { type, tag } = parseImageArgument(argument, settings.defaultImageType);
    const allowedUids = await resolveIds(flags.user, 'passwd');
    const allowedGids = await resolveIds(flags.group, 'group');
    const credentials = await services().credentialStore(this.environment()).read(settings.system);
    return { type, tag, client: this.client(settings), options: { allowedUids, allowedGids, credentials } };
  }

  /** Post the pull once and print the state the gateway reports (`pull --no-wait`, `pullnb`). */
  protected async pullOnce(argument: string, flags: PullRequestFlags): Promise<GatewayImage> {
    const { type, tag, client, options } = await this.request(argument, flags);
    const image = await client.pull(type, tag, options);
    this.debugJson('pull', image);
    if (!this.jsonEnabled()) process.stdout.write(`${formatPullLine(new Date(), type, tag, image, false)}\n`);
    return image;
  }
}

/** `shifterimg pull`: ask the gateway for an image and follow the job. */
export class Pull extends PullCommand {
  static override summary = 'Pull an image from its registry onto this system.';
  static override description = [
    'Asks the image gateway to pull TYPE:TAG (or TAG, with the defaultImageType of udiRoot.conf) and follows the job until it is READY or FAILED.',
    'On a terminal one line is updated in place with the state and the layer and byte progress; otherwise a line is printed for every change of state.',
    'Registry logins saved with "shifterimg login" are sent, signed by munge, so the gateway can pull private images. Such an image is private: only you and the users and groups named with --user and --group may use it.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> <%= command.id %> docker:ubuntu:22.04',
    '<%= config.bin %> <%= command.id %> 127.0.0.1:5000/test/busybox:latest --no-wait',
    '<%= config.bin %> <%= command.id %> registry.example.org/team/app:1.2 --user alice,1002 --group hpcteam',
  ];
  static override args = {
    image: Args.string({ ignoreStdin: true, description: 'TYPE:TAG or TAG, e.g. docker:ubuntu:22.04', required: true }),
  };
  static override flags = {
    wait: Flags.boolean({
      summary: 'Follow the job until READY or FAILURE (--no-wait returns after submitting).',
      default: true,
      allowNo: true,
    }),
    user: Flags.string({
      summary: 'Users (names or uids, comma-separated) who may also use the image if it is private.',
      helpValue: 'USERS',
      multiple: true,
      // One value per --user: `pull --user alice IMAGE` (upstream's order moved behind the mode) keeps IMAGE an argument.
      multipleNonGreedy: true,
    }),
    group: Flags.string({
      summary: 'Groups (names or gids, comma-separated) who may use the image if it is private.',
      helpValue: 'GROUPS',
      multiple: true,
      multipleNonGreedy: true,
    }),
  };

  async run(): Promise<GatewayImage> {
    const { args, flags } = await this.parse(Pull);
    if (!flags.wait) return this.pullOnce(args.image, flags);
    const { type, tag, client, options } = await this.request(args.image, flags);
    const progress = this.jsonEnabled() ? undefined : new PullProgress(type, tag, process.stdout.isTTY === true);
    try {
      const image = await client.pullAndWait(type, tag, options, {
        onUpdate: (update) => {
          this.debugJson('pull', update);
          progress?.update(update);
        },
      });
      return image;
    } finally {
      progress?.end();
    }
  }
}

/**
 * `shifterimg pullnb`: upstream's non-blocking pull, one request whose answer is printed (the same as
 * `pull --no-wait`). Job scripts use it to start a pull and look again later.
 */
export class Pullnb extends PullCommand {
  static override summary = "Start a pull and return at once (upstream's pullnb; the same as pull --no-wait).";
  static override description = [
    'Posts one pull request for TYPE:TAG and prints the state the gateway reports, without following the job. Run it again, or "shifterimg pull", to follow the pull: the gateway treats a repeated request for the same pull as the same pull.',
    'Takes --user and --group as pull does.',
  ].join('\n\n');
  static override examples = [
    '<%= config.bin %> <%= command.id %> docker:ubuntu:22.04',
    '<%= config.bin %> --user alice <%= command.id %> registry.example.org/team/app:1.2',
  ];
  static override args = Pull.args;
  static override flags = { user: Pull.flags.user, group: Pull.flags.group };

  async run(): Promise<GatewayImage> {
    const { args, flags } = await this.parse(Pullnb);
    return this.pullOnce(args.image, flags);
  }
}

/** Renders pull progress: one line redrawn in place on a terminal, one line per state change elsewhere. */
class PullProgress {
  #last = '';
  #drawn = false;

  constructor(
    private readonly type: string,
    private readonly tag: string,
    private readonly terminal: boolean,
  ) {}

  update(image: GatewayImage): void {
    if (this.terminal) {
      // Upstream's sequence: carriage return, erase the line, redraw.
      process.stdout.write(`\r\u001b[2K${formatPullLine(new Date(), this.type, this.tag, image, true)}`);
      this.#drawn = true;
      return;
    }
    if (image.status === this.#last) return;
    this.#last = image.status;
    process.stdout.write(`${formatPullLine(new Date(), this.type, this.tag, image, false)}\n`);
  }

  end(): void {
    if (this.#drawn) process.stdout.write('\n');
  }
}
