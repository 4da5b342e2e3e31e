import { Writable } from 'node:stream';
import { parseConfig, type Caller } from '@shifter/core';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp, type GatewayImageService } from '../app.js';
import { LazyChildLogger, lazyChildLoggerFactory } from './lazy-child-logger.js';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

describe('LazyChildLogger', () => {
  it('logs with the bindings at enabled levels, drops disabled ones, and binds a child only when it logs', () => {
    const { logger, lines } = capture('warn');
    let children = 0;
    const counting = Object.create(logger, {
      child: { value: (...args: Parameters<typeof logger.child>) => (children++, logger.child(...args)) },
    });
    const child = lazyChildLoggerFactory(counting, { reqId: 'req-7' }, {});
    expect(child).toBeInstanceOf(LazyChildLogger);
    child.info('not logged');
    child.debug({ a: 1 }, 'not logged either');
    expect(children).toBe(0);
    child.warn({ code: 'X' }, 'logged');
    child.error('also logged');
    expect(children).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, reqId: 'req-7', code: 'X', msg: 'logged' }),
      expect.objectContaining({ level: 50, reqId: 'req-7', msg: 'also logged' }),
    ]);
    expect(child.level).toBe('warn');
  });

  it('is an eager child when the route sets its own level', () => {
    const { logger } = capture('warn');
    expect(lazyChildLoggerFactory(logger, { reqId: 'r' }, { level: 'debug' })).not.toBeInstanceOf(LazyChildLogger);
  });

  it('keeps request ids on what the gateway logs for a request', async () => {
    const { logger, lines } = capture('info');
    const config = parseConfig({ systems: { cluster: { transfer: { kind: 'local', imageDir: '/images' } } } });
    const service = { systems: () => ['cluster'] } as unknown as GatewayImageService;
    const authenticator = { authenticate: async (): Promise<Caller> => Promise.reject(new Error('munged exploded')) };
    const app = await buildApp({ config, service, authenticator, logger, defaultMetrics: false });
    try {
      const response = await app.inject({ method: 'GET', url: '/api/list/cluster/', headers: { authentication: 'x' } });
      expect(response.statusCode).toBe(500);
      const failed = lines.find((line) => line.msg === 'request failed');
      expect(failed).toMatchObject({ level: 50, reqId: expect.any(String) });
      expect(lines.find((line) => line.msg === 'incoming request')).toMatchObject({ reqId: failed!.reqId });
    } finally {
      await app.close();
    }
  });
});
