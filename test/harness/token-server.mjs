#!/usr/bin/env node
// Token server for the Bearer-auth test registry (Docker registry v2 token protocol), Node built-ins only.
//
// Usage: node test/harness/token-server.mjs CONFIG.json
//   CONFIG = { host, port, keyFile, certFile, issuer, service, ttlSeconds, users: {name: password},
//              publicPrefixes: ["test/"] }
//
// Policy (the test contract in docs/testing.md):
//   - anonymous clients get `pull` on repositories under a public prefix and nothing else;
//   - clients with valid Basic credentials get every action they ask for (pull, push, delete, catalog `*`);
//   - wrong credentials are refused with 401 (as the protocol requires), never downgraded to anonymous.
// A scope the client may not have is dropped from the token rather than refused, like Docker Hub: the registry then
// answers 401 insufficient_scope, which is what clients must handle.
//
// Tokens are RS256 JWTs whose header carries `x5c` = [signing certificate], which the registry checks against its
// `rootcertbundle`. distribution 2.8 accepts a token up to 60 s past `exp` (clock-skew leeway), so a short TTL would
// not be observable; `exp` is shifted back by that leeway so the registry really refuses the token after
// `ttlSeconds`, the lifetime reported to clients as `expires_in` (clients must treat the token as opaque).

import { createPrivateKey, createSign, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

/** distribution's `token.Leeway`: how long past exp (and before nbf) the registry still accepts a token. */
const REGISTRY_LEEWAY_SECONDS = 60;
/** Cap on request bodies (OAuth2 form posts): nothing legitimate is bigger. */
const MAX_BODY_BYTES = 64 * 1024;

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: token-server.mjs CONFIG.json');
  process.exit(64);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const ttl = Number(config.ttlSeconds ?? 5);
if (!Number.isInteger(ttl) || ttl < 1)
  throw new Error(`ttlSeconds must be a positive integer, got ${config.ttlSeconds}`);
const key = createPrivateKey(readFileSync(config.keyFile));
const certDerB64 = new X509Certificate(readFileSync(config.certFile)).raw.toString('base64');
const users = new Map(Object.entries(config.users ?? {}));
const publicPrefixes = config.publicPrefixes ?? ['test/'];

const stats = { issued: 0, anonymous: 0, authenticated: 0, refused: 0 };
/** Opaque OAuth2 refresh tokens → user name (memory only: the server's life is one harness run). */
const refreshTokens = new Map();

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function sign(claims) {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDerB64] };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(key);
  return `${input}.${b64url(signature)}`;
}

function safeEqual(a, b) {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/** @returns {string | null | false} the user name, null for anonymous, false for bad credentials */
function checkPassword(user, password) {
  const expected = users.get(user);
  return expected !== undefined && safeEqual(expected, password) ? user : false;
}

function authenticate(req) {
  const header = req.headers.authorization;
  if (!header) return null;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
  if (!match) return false;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  return checkPassword(decoded.slice(0, colon), decoded.slice(colon + 1));
}

/** Parses `type:name:actions` (the name itself may hold colons only in a registry host part, so split at the ends). */
function parseScope(scope) {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return null;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope
      .slice(last + 1)
      .split(',')
      .filter(Boolean),
  };
}

function grant(scope, user) {
  if (user) return scope.actions;
  if (scope.type !== 'repository') return [];
  if (!publicPrefixes.some((p) => scope.name.startsWith(p))) return [];
  return scope.actions.filter((a) => a === 'pull');
}

function issue(user, scopes, service) {
  const access = [];
  for (const raw of scopes) {
    const scope = parseScope(raw);
    if (!scope) continue;
    const actions = grant(scope, user);
    if (actions.length > 0) access.push({ type: scope.type, name: scope.name, actions });
  }
  const now = Math.floor(Date.now() / 1000);
  const token = sign({
    iss: config.issuer,
    sub: user ?? '',
    aud: service ?? config.service,
    exp: now + ttl - REGISTRY_LEEWAY_SECONDS,
    nbf: now - 1,
    iat: now,
    jti: randomUUID(),
    access,
  });
  stats.issued += 1;
  if (user) stats.authenticated += 1;
  else stats.anonymous += 1;
  return { token, access_token: token, expires_in: ttl, issued_at: new Date(now * 1000).toISOString() };
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function refuse(res, message) {
  stats.refused += 1;
  send(
    res,
    401,
    { errors: [{ code: 'UNAUTHORIZED', message }] },
    {
      'www-authenticate': 'Basic realm="shifter-test-token-server"',
    },
  );
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `scope` may repeat and each value may hold several space-separated scopes (both forms occur in the wild). */
const scopesOf = (params) =>
  params
    .getAll('scope')
    .flatMap((s) => s.split(' '))
    .filter(Boolean);

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://token-server');
  if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, { ok: true });
  if (req.method === 'GET' && url.pathname === '/stats') return send(res, 200, stats);
  if (url.pathname !== '/token') return send(res, 404, { errors: [{ code: 'NOT_FOUND', message: url.pathname }] });

  if (req.method === 'GET') {
    const user = authenticate(req);
    if (user === false) return refuse(res, 'invalid credentials');
    return send(res, 200, issue(user, scopesOf(url.searchParams), url.searchParams.get('service')));
  }
  if (req.method === 'POST') {
    // OAuth2 form flavour of the protocol (grant_type=password | refresh_token).
    const form = new URLSearchParams(await readBody(req));
    let user;
    if (form.get('grant_type') === 'password') {
      user = checkPassword(form.get('username') ?? '', form.get('password') ?? '');
    } else if (form.get('grant_type') === 'refresh_token') {
      user = refreshTokens.get(form.get('refresh_token') ?? '') ?? false;
    } else {
      return send(res, 400, { error: 'unsupported_grant_type' });
    }
    if (user === false) return refuse(res, 'invalid credentials');
    const body = issue(user, scopesOf(form), form.get('service'));
    if (form.get('access_type') === 'offline') {
      body.refresh_token = randomUUID();
      refreshTokens.set(body.refresh_token, user);
    }
    return send(res, 200, body);
  }
  return send(res, 405, { errors: [{ code: 'UNSUPPORTED', message: req.method }] });
}

const server = createServer((req, res) => {
  const started = Date.now();
  handle(req, res)
    .catch((err) => {
      if (!res.headersSent) send(res, 400, { errors: [{ code: 'BAD_REQUEST', message: String(err.message) }] });
    })
    .finally(() => {
      const who = req.headers.authorization ? 'basic' : 'anon';
      console.log(
        `${new Date().toISOString()} ${req.method} ${req.url} ${who} ${res.statusCode} ${Date.now() - started}ms`,
      );
    });
});
server.listen(config.port, config.host ?? '127.0.0.1', () => {
  console.log(`token server on ${config.host ?? '127.0.0.1'}:${config.port}, ttl ${ttl}s, issuer ${config.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
