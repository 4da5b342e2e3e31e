// Load generator (its own process, pinned by the caller): HTTP/1.1 keep-alive GET lookups over CONNECTIONS sockets,
// one request in flight per socket, each request with its own pre-generated credential (used once, in file order).
// Latency is measured per request from just before the request is written until its whole response has been read;
// percentiles are exact (every latency is kept). A response counts as 2xx only from its status line.
// With BENCH_RATE=R (requests/s) the load is open-loop instead: request k is due at start + k/R whatever the answers
// before it, goes out on the first idle connection, and its latency counts from when it was DUE (so a stalled
// server is charged for the requests that queued behind the stall: no coordinated omission). "sustains R/s with
// p99 ≤ X" is measured this way; the closed loop above measures the most the server can do.
// usage: node load.mjs URL PATHS_FILE CREDENTIALS_FILE DURATION_S CONNECTIONS
import { readFileSync } from 'node:fs';
import net from 'node:net';

const [url, pathsFile, credentialsFile, duration, connections] = process.argv.slice(2);
const target = new URL(url);
const port = Number(target.port || 80);
const hostHeader = target.host;
const paths = readFileSync(pathsFile, 'utf8').trim().split('\n');
const credentials = readFileSync(credentialsFile, 'utf8').trim().split('\n');
const latencies = new Float64Array(credentials.length);
const CRLF2 = Buffer.from('\r\n\r\n');

const rate = Number(process.env.BENCH_RATE ?? 0);
/** BENCH_SLOW_MS: requests at least this slow are listed on stderr as [due ms since start, latency ms]. */
const slowMs = Number(process.env.BENCH_SLOW_MS ?? 0);
const slow = [];
/** Open loop: due times of requests not yet sent, and connections waiting for one. */
const dueQueue = [];
const idle = [];
let scheduled = 0;

let next = 0;
let completed = 0;
let non2xx = 0;
let errors = 0;
const started = performance.now();
/** BENCH_WARMUP_S (open loop): requests due in the first seconds are sent but not counted (connections and JIT warm). */
const warmupMs = rate > 0 ? Number(process.env.BENCH_WARMUP_S ?? 0) * 1000 : 0;
const measuredFrom = started + warmupMs;
const deadline = measuredFrom + Number(duration) * 1000;
let warmups = 0;

/** Length of the complete response at the start of buf (head + body), 0 when more bytes are needed; -1 if unparsable. */
function responseLength(buf) {
  const headEnd = buf.indexOf(CRLF2);
  if (headEnd < 0) return 0;
  const head = buf.toString('latin1', 0, headEnd).toLowerCase();
  const bodyStart = headEnd + 4;
  const match = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (match) {
    const total = bodyStart + Number(match[1]);
    return buf.length >= total ? total : 0;
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    // Walk the chunks: size line, data, CRLF; the last chunk has size 0 and ends with an empty trailer line.
    let at = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return 0;
      const size = parseInt(buf.toString('latin1', at, lineEnd), 16);
      if (Number.isNaN(size)) return -1;
      if (size === 0) {
        const end = buf.indexOf(CRLF2, lineEnd);
        return end < 0 ? 0 : end + 4;
      }
      at = lineEnd + 2 + size + 2;
      if (at > buf.length) return 0;
    }
  }
  return -1;
}

function connection() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.hostname, port, noDelay: true });
    let pending = null;
    let sentAt = 0;
    let buffered = Buffer.alloc(0);
    const send = () => {
      if (next >= credentials.length || performance.now() >= deadline) {
        socket.end();
        return;
      }
      let due = performance.now();
      if (rate > 0) {
        if (dueQueue.length === 0) {
          idle.push(send);
          return;
        }
        due = dueQueue.shift();
      }
      const i = next++;
      const request = `GET ${paths[i % paths.length]} HTTP/1.1\r\nhost: ${hostHeader}\r\nauthentication: ${credentials[i]}\r\n\r\n`;
      pending = i;
      sentAt = due;
      socket.write(request);
    };
    socket.on('connect', send);
    socket.on('data', (chunk) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const length = responseLength(buffered);
      if (length === 0) return;
      if (length < 0 || pending === null || length !== buffered.length) {
        // Unparsable, unsolicited or more than one response: the connection cannot be trusted any more.
        errors++;
        socket.destroy();
        return;
      }
      const latency = performance.now() - sentAt;
      if (sentAt < measuredFrom) {
        warmups++;
        pending = null;
        buffered = Buffer.alloc(0);
        send();
        return;
      }
      latencies[completed++] = latency;
      if (slowMs > 0 && latency >= slowMs) slow.push([Math.round(sentAt - started), Math.round(latency)]);
      const status = Number(buffered.toString('latin1', 9, 12));
      if (!(status >= 200 && status < 300)) non2xx++;
      pending = null;
      buffered = Buffer.alloc(0);
      send();
    });
    socket.on('error', () => {
      errors++;
    });
    socket.on('close', () => {
      if (pending !== null) errors++;
      resolve();
    });
  });
}

let ticker;
if (rate > 0) {
  // Release the requests that are due every millisecond to the idle connections (or queue them).
  ticker = setInterval(() => {
    const now = performance.now();
    if (now >= deadline) {
      clearInterval(ticker);
      if (slow.length > 0) process.stderr.write(`slow requests [due ms, latency ms]: ${JSON.stringify(slow)}\n`);
      for (const wake of idle.splice(0)) wake();
      return;
    }
    const dueCount = Math.floor(((now - started) / 1000) * rate);
    while (scheduled < dueCount) dueQueue.push(started + (scheduled++ * 1000) / rate);
    while (dueQueue.length > 0 && idle.length > 0) idle.shift()();
  }, 1);
}
await Promise.all(Array.from({ length: Number(connections) }, connection));
clearInterval(ticker);
if (slow.length > 0) process.stderr.write(`slow requests [due ms, latency ms]: ${JSON.stringify(slow)}\n`);
const elapsed = (performance.now() - measuredFrom) / 1000;
const sorted = latencies.subarray(0, completed).sort();
const percentile = (p) =>
  completed === 0 ? 0 : Number(sorted[Math.min(completed - 1, Math.ceil((p / 100) * completed) - 1)].toFixed(2));
process.stdout.write(
  `${JSON.stringify({
    requests: completed,
    rps: Math.round(completed / elapsed),
    p50: percentile(50),
    p99: percentile(99),
    max: percentile(100),
    non2xx,
    errors,
    duration: Number(elapsed.toFixed(2)),
    ...(rate > 0 ? { targetRps: rate, late: dueQueue.length, warmupS: warmupMs / 1000, warmupRequests: warmups } : {}),
  })}\n`,
);
