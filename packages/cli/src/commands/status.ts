import type { GatewayStatus } from '@shifter/core';
import { BaseCommand } from '../base-command.js';

/** `shifterimg status`: is a gateway up? */
export class Status extends BaseCommand {
  static override summary = 'Check that an image gateway answers.';
  static override description =
    'Asks the configured gateways (in random order, as every command does) for their health and prints the version and systems of the first that answers. Exits 69 when none does.';
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json'];

  async run(): Promise<GatewayStatus> {
    const { flags } = await this.parse(Status);
    const settings = await this.settings(flags);
    const status = await this.client(settings).status();
    this.debugJson('status', status);
    if (!this.jsonEnabled())
      process.stdout.write(`up (version ${status.version}; systems: ${status.systems.join(', ') || 'none'})\n`);
    return status;
  }
}
