/**
 * The Image Gateway's fastify application, built from its dependencies and never listening by itself
 * ({@link buildApp}); `server.ts` listens.
 *
 * @packageDocumentation
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import {
  AutoexpireResponseSchema,
  ErrorResponseSchema,
  ExpireResponseSchema,
  GATEWAY_AUTH_HEADER,
  GATEWAY_ROUTES,
  ImageResponseSchema,
  ImportRequestBodySchema,
  ListResponseSchema,
  MetricsQuerySchema,
  MetricsResponseSchema,
  PullRequestBodySchema,
  QueueResponseSchema,
  ShifterError,
  StatusResponseSchema,
  toImageResponse,
  upstreamJson,
  type Authenticator,
  type Caller,
  type ImageRecord,
  type ImageService,
  type ShifterConfig,
} from '@shifter/core';
import { z } from 'zod';
import { clientErrorHandler, limitConnections, serverTimeouts } from './plugins/connection-guard.js';
import { errorBody, frameworkErrorHandler, registerErrorHandler } from './plugins/error-handler.js';
import { lazyChildLoggerFactory } from './plugins/lazy-child-logger.js';
import { registerMetrics } from './plugins/metrics.js';

/** What the routes need from the image service. */
export type GatewayImageService = Pick<
  ImageService,
  'lookup' | 'list' | 'pull' | 'importImage' | 'expire' | 'autoexpire' | 'metrics' | 'queue' | 'systems'
>;

/** Dependencies of {@link buildApp}. */
export interface GatewayDeps {
  /** Validated configuration (body limit, proxy trust, labels). */
  readonly config: ShifterConfig;
  /** The image service. */
  readonly service: GatewayImageService;
  /** Verifies the `authentication` header. */
  readonly authenticator: Authenticator;
  /** Version reported by `/api/status`. */
  readonly version?: string;
  /** fastify logger option (a pino instance or options); default off. */
  readonly logger?: FastifyServerOptions['logger'] | FastifyServerOptions['loggerInstance'];
  /** Collect process metrics (default true). */
  readonly defaultMetrics?: boolean;
}

/** The one Content-Type of every JSON answer, exactly as upstream's client requires it (no charset parameter). */
export const JSON_TYPE = 'application/json';

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const errorResponses = {
  400: jsonSchema(ErrorResponseSchema),
  401: jsonSchema(ErrorResponseSchema),
  403: jsonSchema(ErrorResponseSchema),
  404: jsonSchema(ErrorResponseSchema),
  405: jsonSchema(ErrorResponseSchema),
  408: jsonSchema(ErrorResponseSchema),
  413: jsonSchema(ErrorResponseSchema),
  431: jsonSchema(ErrorResponseSchema),
  503: jsonSchema(ErrorResponseSchema),
};

/** HTTP methods the gateway answers 405 for on a path that does not offer them (HEAD comes with GET). */
const KNOWN_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

const systemParams = { type: 'object', properties: { system: { type: 'string' } }, required: ['system'] };
const imageParams = {
  type: 'object',
  properties: {
    system: { type: 'string' },
    type: {
      type: 'string',
      enum: ['docker', 'custom'],
      description: 'docker (pulled from a registry; the only type pull accepts) or custom (imported with doimport)',
    },
    '*': { type: 'string', description: 'image tag, URL-escaped (ubuntu%3A22.04)' },
  },
};
const security = [{ munge: [] }];

// NOTE: the JSON reviver drops keys that could reach Object.prototype when a body is later spread or merged.
const safeJsonParse = (text: string): unknown =>
  JSON.parse(text, (key, value: unknown) => (key === '__proto__' || key === 'constructor' ? undefined : value));

function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    const issues = result.error.issues.map((issue) => ({
      path: issue.path.map(String).join('.'),
      message: issue.message,
    }));
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `invalid ${what}: ${issues.map((i) => `${i.path || '(body)'}: ${i.message}`).join('; ')}`,
      {
        details: { issues },
      },
    );
  }
  return result.data;
}

function tagOf(params: Record<string, string | undefined>): string {
  // Clients send `…/<tag>/`; the trailing slash is part of the wildcard.
  const raw = params['*'] ?? '';
  return raw.endsWith('/') ? raw.slice(0, -1) : raw;
}

/**
 * Build the gateway application: error handler, munge authentication on every API route except status, OpenAPI
 * and `/metrics`, and upstream's routes. Call `ready()` or `listen()` on the result; close it to release hooks.
 *
 * @param deps - configuration, image service, authenticator
 * @returns the fastify instance (not listening)
 * @example
 * ```ts
 * const app = await buildApp({ config, service, authenticator });
 * await app.listen({ host: config.gateway.host, port: config.gateway.port });
 * ```
 */
export async function buildApp(deps: GatewayDeps): Promise<FastifyInstance> {
  const { config, service, authenticator } = deps;
  const logger = deps.logger;
  const isInstance = logger !== undefined && typeof logger === 'object' && logger !== null && 'child' in logger;
  const app = Fastify({
    ...(isInstance
      ? { loggerInstance: logger as FastifyServerOptions['loggerInstance'] }
      : { logger: (logger as FastifyServerOptions['logger']) ?? false }),
    // Per-request loggers are bound only when a request actually logs (see LazyChildLogger).
    ...(logger
      ? { childLoggerFactory: lazyChildLoggerFactory as unknown as FastifyServerOptions['childLoggerFactory'] }
      : {}),
    bodyLimit: config.gateway.bodyLimit,
    // Slow-client defences and the header limit (plugins/connection-guard.ts).
    ...serverTimeouts(config.gateway),
    clientErrorHandler,
    frameworkErrors: frameworkErrorHandler,
    trustProxy: config.gateway.trustProxy,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 4096 },
    // Validation is zod's (routes-contract.ts); the JSON schemas given to routes only document them in OpenAPI.
    schemaErrorFormatter: (errors) => new Error(errors.map((e) => e.message).join('; ')),
  }) as unknown as FastifyInstance;
  limitConnections(app.server, config.gateway);
  // Every path's methods, for the 405 answers registered after the routes.
  const offered = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const set = offered.get(route.url) ?? new Set<string>();
    for (const method of methods) set.add(method);
    offered.set(route.url, set);
  });
  app.setValidatorCompiler(() => (data) => ({ value: data }));
  app.setSerializerCompiler(() => (data) => upstreamJson(data));

  app.removeAllContentTypeParsers();
  // Upstream clients post JSON with whatever content type curl picks (often form-urlencoded); read every body as JSON.
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, safeJsonParse(text));
    } catch {
      done(new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'the request body is not valid JSON'), undefined);
    }
  });

  // Upstream's C client takes a JSON answer only when its Content-Type is exactly `application/json`; fastify appends
  // `; charset=utf-8` to every JSON type (even one set explicitly), so the parameter is dropped here, after it. JSON is
  // UTF-8 by definition (RFC 8259), so nothing is lost.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type !== JSON_TYPE && /^application\/json\s*;/i.test(type))
      reply.header('content-type', JSON_TYPE);
    done(null, payload);
  });
  registerErrorHandler(app);
  registerMetrics(app, { defaultMetrics: deps.defaultMetrics ?? true });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Shifter Image Gateway',
        description: 'Upstream-compatible image gateway API. Send a munge credential in the `authentication` header.',
        version: deps.version ?? '0.0.0',
      },
      components: { securitySchemes: { munge: { type: 'apiKey', in: 'header', name: GATEWAY_AUTH_HEADER } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const authenticate = async (
    request: { headers: Record<string, string | string[] | undefined> },
    system: string,
  ): Promise<Caller> => {
    const header = request.headers[GATEWAY_AUTH_HEADER];
    if (Array.isArray(header)) throw new ShifterError('SHIFTER_AUTH_INVALID', 'send exactly one authentication header');
    return authenticator.authenticate(system, header);
  };
  const labels = config.enableLabels;

  app.get(
    GATEWAY_ROUTES.status,
    { schema: { summary: 'Liveness; needs no credentials', response: { 200: jsonSchema(StatusResponseSchema) } } },
    async () => ({
      status: 'up' as const,
      version: deps.version ?? '0.0.0',
      systems: service.systems(),
    }),
  );

  type SystemRequest = { Params: { system: string } };
  type ImageRequest = { Params: { system: string; type: string; '*': string } };

  app.get<SystemRequest>(
    GATEWAY_ROUTES.list,
    {
      schema: {
        summary: 'READY images the caller may see',
        params: systemParams,
        security,
        response: { 200: jsonSchema(ListResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      const records = await service.list(request.params.system, caller);
      return { list: records.map((record) => toImageResponse(record, { labels })) };
    },
  );

  // A frozen record (the SQLite store hands out frozen, shared records) can never change, so its response body is
  // serialised once; the body is the same bytes upstreamJson(toImageResponse(record)) gives.
  const lookupBodies = new WeakMap<ImageRecord, string>();
  const lookupBody = (record: ImageRecord): string => {
    if (!Object.isFrozen(record)) return upstreamJson(toImageResponse(record, { labels }));
    let body = lookupBodies.get(record);
    if (body === undefined) {
      body = upstreamJson(toImageResponse(record, { labels }));
      lookupBodies.set(record, body);
    }
    return body;
  };

  app.get<ImageRequest>(
    GATEWAY_ROUTES.lookup,
    {
      schema: {
        summary: 'Look up a READY image by tag (counts as use)',
        params: imageParams,
        security,
        response: { 200: jsonSchema(ImageResponseSchema), ...errorResponses },
      },
    },
    async (request, reply) => {
      const caller = await authenticate(request, request.params.system);
      const record = await service.lookup(request.params.system, request.params.type, tagOf(request.params), caller);
      return reply.type(JSON_TYPE).send(lookupBody(record));
    },
  );

  app.post<ImageRequest>(
    GATEWAY_ROUTES.pull,
    {
      schema: {
        summary: 'Start or join a pull; clients poll by re-posting',
        params: imageParams,
        body: jsonSchema(PullRequestBodySchema, 'input'),
        security,
        response: { 200: jsonSchema(ImageResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      const body = parseWith(PullRequestBodySchema, request.body, 'pull request body');
      const record = await service.pull(request.params.system, request.params.type, tagOf(request.params), caller, {
        allowedUids: body.allowed_uids,
        allowedGids: body.allowed_gids,
      });
      return toImageResponse(record, { labels });
    },
  );

  app.post<ImageRequest>(
    GATEWAY_ROUTES.doimport,
    {
      schema: {
        summary: 'Import a squashfs file the caller can read on the system',
        params: imageParams,
        body: jsonSchema(ImportRequestBodySchema, 'input'),
        security,
        response: { 200: jsonSchema(ImageResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      const body = parseWith(ImportRequestBodySchema, request.body, 'import request body');
      const record = await service.importImage(
        request.params.system,
        request.params.type,
        tagOf(request.params),
        caller,
        {
          filepath: body.filepath,
          format: body.format,
          allowedUids: body.allowed_uids,
          allowedGids: body.allowed_gids,
        },
      );
      return toImageResponse(record, { labels });
    },
  );

  app.get<ImageRequest>(
    GATEWAY_ROUTES.expire,
    {
      schema: {
        summary: 'Admin: expire an image',
        params: imageParams,
        security,
        response: { 200: jsonSchema(ExpireResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      return {
        status: await service.expire(request.params.system, request.params.type, tagOf(request.params), caller),
      };
    },
  );

  app.get<SystemRequest>(
    GATEWAY_ROUTES.autoexpire,
    {
      schema: {
        summary: 'Admin: expire unused images and clean stuck records',
        params: systemParams,
        security,
        response: { 200: jsonSchema(AutoexpireResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      return { status: await service.autoexpire(request.params.system, caller) };
    },
  );

  app.get<SystemRequest & { Querystring: Record<string, string> }>(
    GATEWAY_ROUTES.metrics,
    {
      schema: {
        summary: 'Admin: the last lookups (newest last)',
        params: systemParams,
        querystring: jsonSchema(MetricsQuerySchema, 'input'),
        security,
        response: { 200: jsonSchema(MetricsResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      const { limit } = parseWith(MetricsQuerySchema, request.query, 'query');
      const rows = await service.metrics(request.params.system, caller, limit);
      return rows.map((row) => ({
        user: row.user,
        uid: row.uid,
        system: row.system,
        type: row.itype,
        tag: row.tag,
        id: row.imageId,
        time: row.time / 1000,
      }));
    },
  );

  app.get<SystemRequest>(
    GATEWAY_ROUTES.queue,
    {
      schema: {
        summary:
          'Pulls and imports in flight the caller may see: their own and public ones (needs credentials, unlike upstream)',
        params: systemParams,
        security,
        response: { 200: jsonSchema(QueueResponseSchema), ...errorResponses },
      },
    },
    async (request) => {
      const caller = await authenticate(request, request.params.system);
      return { list: await service.queue(request.params.system, caller) };
    },
  );

  // A path asked with a method it does not offer answers 405 with the methods it does (instead of 404).
  for (const [url, methods] of [...offered]) {
    const allow = KNOWN_METHODS.filter((method) => methods.has(method) || (method === 'HEAD' && methods.has('GET')));
    const missing = KNOWN_METHODS.filter((method) => !allow.includes(method));
    if (missing.length === 0 || allow.length === 0) continue;
    app.route({
      method: [...missing],
      url,
      schema: { hide: true },
      handler: async (request, reply) => {
        const error = new ShifterError(
          'SHIFTER_METHOD_NOT_ALLOWED',
          `${request.method.slice(0, 16)} is not offered here; use ${allow.join(', ')}`,
          {
            details: { allow },
          },
        );
        return reply
          .status(405)
          .header('allow', allow.join(', '))
          .type('application/json')
          .send(JSON.stringify(errorBody(error)));
      },
    });
  }

  return app;
}
