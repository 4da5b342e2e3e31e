import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ShifterError, toShifterError, type ErrorCode, type ErrorResponse } from '@shifter/core';

// fastify's own client-side errors, by code, mapped onto the catalogue. Anything with a 4xx status that is not listed
// becomes SHIFTER_USAGE_INVALID_ARGUMENT, so a client error never turns into a 5xx.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'SHIFTER_REQUEST_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'SHIFTER_USAGE_INVALID_ARGUMENT',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'SHIFTER_USAGE_INVALID_ARGUMENT',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'SHIFTER_USAGE_INVALID_ARGUMENT',
  FST_ERR_VALIDATION: 'SHIFTER_USAGE_INVALID_ARGUMENT',
  FST_ERR_BAD_URL: 'SHIFTER_REQUEST_MALFORMED',
  FST_ERR_MAX_PARAM_LENGTH: 'SHIFTER_REQUEST_TOO_LARGE',
};

/**
 * Convert anything thrown by a route into the catalogue's answer.
 * @param error - the thrown value
 */
export function toReplyError(error: unknown): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  const mapped = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (mapped) return new ShifterError(mapped, fastifyError.message, { cause: error });
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    if (fastifyError.statusCode === 413)
      return new ShifterError('SHIFTER_REQUEST_TOO_LARGE', fastifyError.message, { cause: error });
    return new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', fastifyError.message ?? 'bad request', { cause: error });
  }
  if (error instanceof SyntaxError)
    return new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', 'the request body is not valid JSON', { cause: error });
  return toShifterError(error);
}

/**
 * The error body: upstream's `status`, `error` and `message`, plus `code` and client-safe `details`.
 * @param error - a Shifter error
 */
export function errorBody(error: ShifterError): ErrorResponse {
  const body: ErrorResponse = { status: error.httpStatus, error: error.code, code: error.code, message: error.message };
  if (Object.keys(error.details).length > 0) body.details = error.details;
  return body;
}

/**
 * fastify `frameworkErrors`: errors raised before routing (a path that is not valid percent-encoding, a parameter
 * longer than the router allows) answered with the catalogue body.
 */
export function frameworkErrorHandler(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const shifterError = toReplyError(error);
  void reply
    .status(shifterError.httpStatus)
    .type('application/json')
    .send(JSON.stringify(errorBody(shifterError)));
}

/** Install the one error handler and the not-found handler. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const shifterError = toReplyError(error);
    const status = shifterError.httpStatus;
    // SECURITY: causes and stacks go to the log only; internal errors get the catalogue summary, not their message.
    if (status >= 500) request.log.error({ err: error, code: shifterError.code }, 'request failed');
    else request.log.info({ code: shifterError.code, message: shifterError.message }, 'request refused');
    const safe =
      shifterError.code === 'SHIFTER_INTERNAL'
        ? new ShifterError('SHIFTER_INTERNAL', 'An unexpected internal error')
        : shifterError;
    if (shifterError.retryable && status === 503) void reply.header('retry-after', '5');
    void reply.status(status).type('application/json').send(errorBody(safe));
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const error = new ShifterError(
      'SHIFTER_ROUTE_NOT_FOUND',
      `no such endpoint: ${request.method} ${request.url.slice(0, 200)}`,
    );
    void reply.status(404).type('application/json').send(errorBody(error));
  });
}
