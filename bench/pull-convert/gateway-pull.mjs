// One pull through a running gateway, timed as its user waits for it: from the POST of the pull to the first poll
// that answers READY. Polls re-POST the pull (the REST API's way) every POLL_MS with a fresh munge credential each,
// taken from CREDENTIALS (one per line, made ahead of the run so that polling costs no `munge` process); when the file
// runs out, `munge -n` makes more. With PROXY (bench/lib/throttle-proxy.mjs) its records are reset before the POST and
// read after READY: the time its last byte left it, READY − last byte, and the peak of concurrent blob GETs.
// Prints one JSON line; times are in ms, relative to the POST unless named `...At` (epoch ms).
//   node bench/pull-convert/gateway-pull.mjs GATEWAY_URL SYSTEM REF CREDENTIALS [PROXY_URL]
// Env: POLL_MS (25), PULL_TIMEOUT_S (1800).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const [gateway, system, ref, credentialFile, proxy] = process.argv.slice(2);
if (!gateway || !system || !ref || !credentialFile) {
  process.stderr.write('usage: gateway-pull.mjs GATEWAY_URL SYSTEM REF CREDENTIALS [PROXY_URL]\n');
  process.exit(64);
}
const pollMs = Number(process.env.POLL_MS ?? 25);
const timeoutMs = Number(process.env.PULL_TIMEOUT_S ?? 1800) * 1000;
const now = () => performance.timeOrigin + performance.now();
const credentials = readFileSync(credentialFile, 'utf8').split('\n').filter(Boolean);
let used = 0;
const credential = () => credentials[used++] ?? execFileSync('munge', ['-n']).toString().trim();
const url = `${gateway}/api/pull/${system}/docker/${encodeURIComponent(ref)}/`;

async function post() {
  const response = await fetch(url, { method: 'POST', headers: { authentication: credential() } });
  const body = await response.json();
  if (!response.ok) throw new Error(`POST ${url}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

if (proxy) await fetch(`${proxy}/__throttle/reset`, { method: 'POST' });
const postedAt = now();
let answer = await post();
const firstAnswerMs = now() - postedAt;
const seen = { [answer.status]: firstAnswerMs };
let polls = 0;
while (answer.status !== 'READY' && answer.status !== 'FAILURE') {
  if (now() - postedAt > timeoutMs) throw new Error(`no READY after ${timeoutMs} ms: ${JSON.stringify(answer)}`);
  await new Promise((resolve) => setTimeout(resolve, pollMs));
  answer = await post();
  polls++;
  seen[answer.status] ??= now() - postedAt;
}
const readyAt = now();
const result = {
  ref,
  status: answer.status,
  ...(answer.status === 'FAILURE' ? { message: answer.status_message } : {}),
  pullToReadyMs: Math.round(readyAt - postedAt),
  polls,
  pollMs,
  firstSeenMs: Object.fromEntries(Object.entries(seen).map(([status, ms]) => [status, Math.round(ms)])),
  postedAt,
  readyAt,
};
if (proxy) {
  const stats = await (await fetch(`${proxy}/__throttle/stats`)).json();
  const gets = stats.blobGets;
  Object.assign(result, {
    proxyMbps: stats.mbps,
    lastByteMs: Math.round(stats.lastByteAt - postedAt),
    readyMinusLastByteMs: Math.round(readyAt - stats.lastByteAt),
    firstBlobGetMs: gets.length ? Math.round(stats.firstBlobGetAt - postedAt) : null,
    blobGets: gets.length,
    blobBytes: gets.reduce((sum, get) => sum + get.bytes, 0),
    maxConcurrentBlobGets: stats.maxConcurrentBlobGets,
    blobGetSpansMs: gets.map((get) => [Math.round(get.start - postedAt), Math.round(get.end - postedAt)]),
  });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
