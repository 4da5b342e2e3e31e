// The same measurement with autocannon (BENCH_LOAD=autocannon in run.sh), kept for comparison: autocannon rebuilds
// every request object and parses responses in JavaScript, costing about twice the CPU per request of load.mjs.
// usage: node load-autocannon.mjs URL PATHS_FILE CREDENTIALS_FILE DURATION_S CONNECTIONS
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const [url, pathsFile, credentialsFile, duration, connections] = process.argv.slice(2);
const paths = readFileSync(pathsFile, 'utf8').trim().split('\n');
const credentials = readFileSync(credentialsFile, 'utf8').trim().split('\n');
let next = 0;
const result = await autocannon({
  url,
  duration: Number(duration),
  connections: Number(connections),
  amount: credentials.length,
  requests: [
    {
      method: 'GET',
      setupRequest: (request) => {
        const credential = credentials[next];
        const path = paths[next % paths.length];
        next++;
        return { ...request, path, headers: { ...request.headers, authentication: credential } };
      },
    },
  ],
});
process.stdout.write(
  `${JSON.stringify({
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    duration: result.duration,
  })}\n`,
);
