#!/usr/bin/env node
// Production entry: the bundled dist/index.js holds oclif, the commands and the gateway client.
import { execute } from '../dist/index.js';

await execute({ dir: import.meta.url });
