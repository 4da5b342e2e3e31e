// Rewrites packages/cli/command-snapshot.json after an intended change of the command-line surface:
// `npm run snapshot:update -w @shifter/cli`. Review the diff: removing or renaming anything breaks users' scripts.
import { writeFileSync } from 'node:fs';
import { commandSurface } from '../src/command-surface.js';

writeFileSync(new URL('../command-snapshot.json', import.meta.url), `${JSON.stringify(commandSurface(), null, 2)}\n`);
console.log('wrote command-snapshot.json');
