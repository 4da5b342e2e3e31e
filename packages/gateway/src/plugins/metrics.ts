import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one gateway instance (its own registry, so several apps in one process stay apart). */
export interface GatewayMetrics {
  /** The registry `/metrics` renders. */
  readonly registry: Registry;
}

/**
 * Count and time every request by route pattern (never by URL: tags would leak image names and explode cardinality).
 * @param app - the fastify instance
 * @param options - `defaultMetrics: false` skips process metrics (tests building many apps)
 */
export function registerMetrics(app: FastifyInstance, options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'shifter_gateway_' });
  const requests = new Counter({
    name: 'shifter_gateway_requests_total',
    help: 'HTTP requests by route pattern, method and status code',
    labelNames: ['route', 'method', 'status_code'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'shifter_gateway_request_duration_seconds',
    help: 'HTTP request duration by route pattern and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  // Label sets are few (routes × methods × status codes): their children are made once and reused, and the hook is
  // a plain callback (no promise per request).
  const counters = new Map<string, Counter.Internal>();
  const timers = new Map<string, Histogram.Internal<'route' | 'method'>>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const method = request.method;
    const status = reply.statusCode;
    const timerKey = `${method} ${route}`;
    const counterKey = `${status} ${timerKey}`;
    let counter = counters.get(counterKey);
    if (!counter) {
      counter = requests.labels({ route, method, status_code: String(status) });
      counters.set(counterKey, counter);
    }
    let timer = timers.get(timerKey);
    if (!timer) {
      timer = duration.labels({ route, method });
      timers.set(timerKey, timer);
    }
    counter.inc();
    timer.observe(reply.elapsedTime / 1000);
    done();
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    void reply.type(registry.contentType);
    return registry.metrics();
  });
  return { registry };
}
