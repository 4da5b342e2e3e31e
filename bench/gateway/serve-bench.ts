// Start a gateway for the benchmark: `serve-bench.ts CONFIG [libmunge|unmunge]`. Prints READY when listening.
import { readFileSync } from 'node:fs';
import { parseConfig } from '@shifter/core';
import { startGateway } from '@shifter/gateway';
import { pino } from 'pino';
import { createUnmungeVerifier } from './unmunge-verifier.js';

const [file, mode = 'libmunge'] = process.argv.slice(2);
const config = parseConfig(JSON.parse(readFileSync(file!, 'utf8')));
const running = await startGateway(config, {
  logger: pino({ level: 'warn' }),
  ...(mode === 'unmunge' ? { components: { createVerifier: createUnmungeVerifier } } : {}),
});
process.stdout.write(`READY ${running.url}\n`);
const stop = () => void running.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
