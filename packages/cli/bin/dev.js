#!/usr/bin/env -S node --import tsx --conditions=@shifter/source
// Development entry: runs the TypeScript sources through tsx, with the commands loaded from src/.
import { runFromSources } from '../src/dev.ts';

await runFromSources(import.meta.url, process.argv.slice(2));
