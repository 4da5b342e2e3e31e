import type { GatewayQueueEntry } from '@shifter/core';
import { BaseCommand } from '../base-command.js';
import { formatQueue } from '../format.js';

/** `--json` result of `queue`. */
export interface QueueResult {
  /** System the queue is for. */
  system: string;
  /** Pulls and imports still being worked on. */
  queue: GatewayQueueEntry[];
}

/** `shifterimg queue`: pulls and imports in progress. */
export class Queue extends BaseCommand {
  static override summary = 'Show the pulls and imports in progress on this system.';
  static override description =
    'Prints one line per image still being worked on: its state, the request and the progress message.';
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json'];

  async run(): Promise<QueueResult> {
    const { flags } = await this.parse(Queue);
    const settings = await this.settings(flags);
    const queue = await this.client(settings).queue();
    this.debugJson('queue', queue);
    if (!this.jsonEnabled()) process.stdout.write(formatQueue(queue));
    return { system: settings.system, queue };
  }
}
