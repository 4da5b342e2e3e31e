/**
 * The gateway's defences against slow and greedy clients, at the connection level (below fastify's routing):
 *
 * - Timeouts (see {@link serverTimeouts}): all headers within `gateway.headersTimeoutMs`, the whole request within
 *   `gateway.requestTimeoutMs`, and no connection idle longer than `gateway.idleTimeoutMs`. A client that trickles
 *   its headers (slowloris) is answered 408 `SHIFTER_REQUEST_TIMEOUT` and disconnected.
 * - `gateway.maxConnections`: connections beyond it are refused by the kernel-facing listener (Node closes them at
 *   once), so the process never runs out of file descriptors for its store, queue and downloads.
 * - `gateway.maxConnectionsPerAddress`: one client address may hold at most this many connections; the next one is
 *   answered 503 `SHIFTER_TOO_MANY_CONNECTIONS` and closed. Being below `maxConnections`, it keeps one address from
 *   taking every slot, so lookups from other addresses keep being answered.
 * - Malformed requests the HTTP parser refuses (bad framing, raw control characters, oversized headers) get a
 *   catalogue answer from {@link clientErrorHandler} instead of Node's bare `400 Client Error`.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { ShifterError, type ErrorCode, type ShifterConfig } from '@shifter/core';
import { errorBody } from './error-handler.js';

type GatewayLimits = Pick<
  ShifterConfig['gateway'],
  | 'headersTimeoutMs'
  | 'requestTimeoutMs'
  | 'idleTimeoutMs'
  | 'maxConnections'
  | 'maxConnectionsPerAddress'
  | 'maxHeaderBytes'
  | 'fdReserve'
>;

/**
 * fastify server options carrying the timeouts and the header limit.
 * @param limits - the `gateway` section of the configuration
 */
export function serverTimeouts(limits: GatewayLimits): {
  connectionTimeout: number;
  keepAliveTimeout: number;
  requestTimeout: number;
  http: { headersTimeout: number; maxHeaderSize: number; connectionsCheckingInterval: number; requestTimeout: number };
} {
  // Node requires headersTimeout ≤ requestTimeout.
  const requestTimeout = Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs);
  return {
    connectionTimeout: limits.idleTimeoutMs,
    // Not shorter: a keep-alive connection whose next request arrives while the event loop is busy (an in-process
    // conversion) would be closed under it.
    keepAliveTimeout: limits.idleTimeoutMs,
    requestTimeout,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout,
      maxHeaderSize: limits.maxHeaderBytes,
      // How often Node checks the header and request timeouts (its default, 30 s, would let a slow client stay
      // up to 30 s past its deadline).
      connectionsCheckingInterval: Math.max(250, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 2))),
    },
  };
}

/** A raw HTTP/1.1 answer carrying a catalogue error, written straight to a socket. */
export function rawErrorResponse(code: ErrorCode, message: string): string {
  const error = new ShifterError(code, message);
  const body = JSON.stringify(errorBody(error));
  const reason =
    { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable' }[
      error.httpStatus
    ] ?? 'Error';
  return `HTTP/1.1 ${error.httpStatus} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * fastify `clientErrorHandler`: answer what the HTTP parser refused with a catalogue code, then close.
 * `ERR_HTTP_REQUEST_TIMEOUT` → 408 `SHIFTER_REQUEST_TIMEOUT`, `HPE_HEADER_OVERFLOW` → 431
 * `SHIFTER_HEADERS_TOO_LARGE`, anything else → 400 `SHIFTER_REQUEST_MALFORMED` (Content-Length with
 * Transfer-Encoding, NUL or other control characters in the request line or headers, bad chunking).
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  let answer: string;
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    answer = rawErrorResponse('SHIFTER_REQUEST_TIMEOUT', 'the request was not received in time');
  else if (error.code === 'HPE_HEADER_OVERFLOW')
    answer = rawErrorResponse(
      'SHIFTER_HEADERS_TOO_LARGE',
      'the request line and headers are larger than gateway.maxHeaderBytes',
    );
  else
    answer = rawErrorResponse(
      'SHIFTER_REQUEST_MALFORMED',
      `the HTTP request is malformed (${String(error.code ?? 'parse error').slice(0, 64)})`,
    );
  if (socket.writable) socket.end(answer);
  socket.destroySoon();
}

/**
 * Cap connections: `maxConnections` in total (Node refuses the rest) and `maxConnectionsPerAddress` per remote
 * address (answered 503 `SHIFTER_TOO_MANY_CONNECTIONS` and closed).
 * @param server - the gateway's HTTP server (before listen)
 * @param limits - the `gateway` section of the configuration
 * @returns the number of open connections per address (live; for metrics and tests)
 */
export function limitConnections(server: Server, limits: GatewayLimits): ReadonlyMap<string, number> {
  server.maxConnections = limits.maxConnections;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const count = (open.get(address) ?? 0) + 1;
    if (count > limits.maxConnectionsPerAddress) {
      socket.on('error', () => undefined);
      socket.end(rawErrorResponse('SHIFTER_TOO_MANY_CONNECTIONS', `too many open connections from ${address}`));
      socket.destroySoon();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
  return open;
}

/**
 * The soft `RLIMIT_NOFILE` of this process (from /proc/self/limits), or null where it cannot be read.
 */
export function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((row) => row.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? null : Number(soft);
  } catch {
    return null;
  }
}

/**
 * The file-descriptor budget: `maxConnections + fdReserve` must fit the process's `RLIMIT_NOFILE`.
 * @returns a warning to log, or null when the budget fits
 */
export function fdBudgetWarning(limits: GatewayLimits, limit = openFileLimit()): string | null {
  if (limit === null) return null;
  const needed = limits.maxConnections + limits.fdReserve;
  if (needed <= limit) return null;
  return `gateway.maxConnections (${limits.maxConnections}) + gateway.fdReserve (${limits.fdReserve}) = ${needed} exceeds the open-file limit ${limit}: raise LimitNOFILE/ulimit -n or lower maxConnections`;
}
