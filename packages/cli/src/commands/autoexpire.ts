import { BaseCommand } from '../base-command.js';

/** `--json` result of `autoexpire`. */
export interface AutoexpireResult {
  /** Ids of the images expired. */
  expired: string[];
}

/** `shifterimg autoexpire` (administrators): expire unused images. */
export class Autoexpire extends BaseCommand {
  static override summary = 'Expire images nobody looked up for too long (administrators).';
  static override description =
    'Asks the gateway to expire every image of this system whose expiry time has passed and to purge stuck pulls. Only the administrators of the system may do this. Prints nothing on success, as upstream; --json lists the expired ids.';
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json'];

  async run(): Promise<AutoexpireResult> {
    const { flags } = await this.parse(Autoexpire);
    const settings = await this.settings(flags);
    const result = await this.client(settings).autoexpire();
    this.debugJson('autoexpire', result);
    return { expired: result.status };
  }
}
