#!/usr/bin/env node
// A throttling reverse proxy for the benchmarks: every request is forwarded to one upstream registry (plain HTTP) and
// every response body goes through ONE token bucket shared by all connections, so the TOTAL throughput over all
// connections is limited (a registry behind a ~25 MB/s link, whatever the client's parallelism). It records, per blob
// GET (`GET /v2/<name>/blobs/<digest>`), the start (request received), the first and the last byte sent, and the
// bytes; the time the last byte of any response left it; and the largest number of blob GETs in flight at once.
//
//   node bench/lib/throttle-proxy.mjs --upstream http://127.0.0.1:5000 [--port 0] [--host 127.0.0.1]
//        [--mbps 25] [--burst-kb 256] [--chunk-kb 16]
//
// Prints `LISTENING http://HOST:PORT` on stdout once it accepts connections. Rates are in MB/s (10^6 bytes/s);
// `--mbps 0` forwards without a limit (the records are still kept). Control endpoints (answered by the proxy, never
// forwarded):
//   GET  /__throttle/stats           JSON: { mbps, requests, blobGets: [...], maxConcurrentBlobGets, lastByteAt, ... }
//   POST /__throttle/reset           forget the records (start of a measured run)
//   POST /__throttle/rate?mbps=N     change the limit
// Times are milliseconds since the Unix epoch with a fractional part (performance.timeOrigin + performance.now()), so
// other processes on the machine can compare them with their own Date.now()-based or timeOrigin-based times.
// Also importable: `startThrottleProxy({ upstream, port, host, mbps })` resolves to { url, stats(), reset(), close() }.
import http from 'node:http';
import { Transform, pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const now = () => performance.timeOrigin + performance.now();
const BLOB_GET = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})(?:\?.*)?$/;

/** A token bucket shared by every response: `take(n)` resolves when n bytes may be sent; waiters are served FIFO. */
class TokenBucket {
  #rate; // bytes per ms; 0 = unlimited
  #capacity;
  #tokens;
  #last = performance.now();
  #waiters = [];
  #timer = undefined;

  constructor(mbps, burstBytes) {
    this.#rate = (mbps * 1e6) / 1000;
    this.#capacity = burstBytes;
    this.#tokens = burstBytes;
  }

  setRate(mbps) {
    this.#refill();
    this.#rate = (mbps * 1e6) / 1000;
    this.#serve();
  }

  get mbps() {
    return (this.#rate * 1000) / 1e6;
  }

  take(bytes) {
    if (this.#rate === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ bytes, resolve });
      if (this.#waiters.length === 1) this.#serve();
    });
  }

  #refill() {
    const t = performance.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + (t - this.#last) * this.#rate);
    this.#last = t;
  }

  #serve() {
    if (this.#timer !== undefined) return;
    this.#refill();
    while (this.#waiters.length > 0) {
      const head = this.#waiters[0];
      if (this.#rate !== 0 && this.#tokens < head.bytes) break;
      this.#waiters.shift();
      if (this.#rate !== 0) this.#tokens -= head.bytes;
      head.resolve();
    }
    if (this.#waiters.length === 0) return;
    const wait = Math.max(1, (this.#waiters[0].bytes - this.#tokens) / this.#rate);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#serve();
    }, wait);
  }
}

/** Cuts a body into pieces of at most `chunk` bytes and lets each through when the bucket allows it. */
function throttled(bucket, chunk, record) {
  return new Transform({
    transform(data, _encoding, done) {
      (async () => {
        for (let offset = 0; offset < data.length; offset += chunk) {
          const piece = data.subarray(offset, Math.min(offset + chunk, data.length));
          await bucket.take(piece.length);
          record.firstByte ??= now();
          record.bytes += piece.length;
          this.push(piece);
        }
      })().then(() => done(), done);
    },
  });
}

/**
 * Start a throttling proxy in front of `upstream`.
 * @param {{ upstream: string, port?: number, host?: string, mbps?: number, burstBytes?: number, chunkBytes?: number }} options
 */
export async function startThrottleProxy(options) {
  const upstream = new URL(options.upstream);
  if (upstream.protocol !== 'http:') throw new Error(`upstream must be http://, got ${options.upstream}`);
  const chunk = options.chunkBytes ?? 16 * 1024;
  const bucket = new TokenBucket(options.mbps ?? 25, options.burstBytes ?? 256 * 1024);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  let state;
  const reset = () => {
    state = { since: now(), requests: 0, blobGets: [], inFlight: 0, maxConcurrentBlobGets: 0, lastByteAt: 0, bytes: 0 };
  };
  reset();
  const stats = () => ({
    mbps: bucket.mbps,
    since: state.since,
    requests: state.requests,
    bytes: state.bytes,
    blobGets: state.blobGets,
    blobGetsInFlight: state.inFlight,
    maxConcurrentBlobGets: state.maxConcurrentBlobGets,
    firstBlobGetAt: state.blobGets.length ? Math.min(...state.blobGets.map((g) => g.start)) : 0,
    lastByteAt: state.lastByteAt,
  });

  const control = (request, response) => {
    const url = new URL(request.url, 'http://proxy');
    const answer = (status, body) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(`${JSON.stringify(body)}\n`);
    };
    if (request.method === 'GET' && url.pathname === '/__throttle/stats') return answer(200, stats());
    if (request.method === 'POST' && url.pathname === '/__throttle/reset') {
      reset();
      return answer(200, { reset: true });
    }
    if (request.method === 'POST' && url.pathname === '/__throttle/rate') {
      const mbps = Number(url.searchParams.get('mbps'));
      if (!Number.isFinite(mbps) || mbps < 0) return answer(400, { error: 'mbps must be a number >= 0' });
      bucket.setRate(mbps);
      return answer(200, { mbps });
    }
    return answer(404, { error: 'unknown control endpoint' });
  };

  const server = http.createServer((request, response) => {
    if (request.url.startsWith('/__throttle/')) return control(request, response);
    const run = state;
    run.requests++;
    const blob = request.method === 'GET' ? BLOB_GET.exec(request.url) : null;
    const record = { method: request.method, path: request.url, start: now(), firstByte: undefined, end: 0, bytes: 0 };
    let counted = false;
    if (blob) {
      record.digest = blob[1];
      run.blobGets.push(record);
      run.inFlight++;
      counted = true;
      run.maxConcurrentBlobGets = Math.max(run.maxConcurrentBlobGets, run.inFlight);
    }
    const finish = () => {
      if (counted) {
        counted = false;
        run.inFlight--;
      }
    };
    response.on('close', finish);
    const outgoing = http.request(
      {
        agent,
        host: upstream.hostname,
        port: upstream.port || 80,
        method: request.method,
        path: request.url,
        headers: request.headers,
      },
      (reply) => {
        record.status = reply.statusCode;
        response.writeHead(reply.statusCode ?? 502, reply.headers);
        pipeline(reply, throttled(bucket, chunk, record), response, (error) => {
          record.end = now();
          if (error) record.error = error.code ?? error.message;
          run.bytes += record.bytes;
          if (record.bytes > 0) run.lastByteAt = Math.max(run.lastByteAt, record.end);
          finish();
        });
      },
    );
    outgoing.on('error', (error) => {
      record.error = error.code ?? error.message;
      record.end = now();
      finish();
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'text/plain' });
      response.end(`proxy: upstream error ${record.error}\n`);
    });
    request.pipe(outgoing);
  });
  // A TLS probe (skopeo tries https first) or garbage: answer 400 and close, as a plain HTTP registry does.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const address = server.address();
  return {
    url: `http://${address.address}:${address.port}`,
    stats,
    reset,
    setRate: (mbps) => bucket.setRate(mbps),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      upstream: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      mbps: { type: 'string', default: '25' },
      'burst-kb': { type: 'string', default: '256' },
      'chunk-kb': { type: 'string', default: '16' },
    },
  });
  if (!values.upstream) {
    process.stderr.write('usage: throttle-proxy.mjs --upstream http://HOST:PORT [--port N] [--mbps 25]\n');
    process.exit(64);
  }
  const proxy = await startThrottleProxy({
    upstream: values.upstream,
    port: Number(values.port),
    host: values.host,
    mbps: Number(values.mbps),
    burstBytes: Number(values['burst-kb']) * 1024,
    chunkBytes: Number(values['chunk-kb']) * 1024,
  });
  process.stdout.write(`LISTENING ${proxy.url}\n`);
  const stop = () => void proxy.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
