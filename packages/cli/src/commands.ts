import { Autoexpire } from './commands/autoexpire.js';
import { Expire } from './commands/expire.js';
import { Images } from './commands/images.js';
import { Import } from './commands/import.js';
import { Login } from './commands/login.js';
import { Lookup } from './commands/lookup.js';
import { Pull, Pullnb } from './commands/pull.js';
import { Queue } from './commands/queue.js';
import { Status } from './commands/status.js';

/**
 * The explicit command map (oclif's "explicit" discovery strategy), so the whole CLI can be one bundled file with no
 * directory scan at start-up.
 */
export const COMMANDS = {
  autoexpire: Autoexpire,
  expire: Expire,
  images: Images,
  import: Import,
  login: Login,
  lookup: Lookup,
  pull: Pull,
  pullnb: Pullnb,
  queue: Queue,
  status: Status,
};
