/**
 * `@shifter/gateway`: the Image Gateway REST service over `@shifter/core`.
 *
 * @packageDocumentation
 */
export { JSON_TYPE, buildApp, type GatewayDeps, type GatewayImageService } from './app.js';
export { errorBody, toReplyError } from './plugins/error-handler.js';
export { registerMetrics, type GatewayMetrics } from './plugins/metrics.js';
export {
  GATEWAY_VERSION,
  createLogger,
  startGateway,
  startWorker,
  type RunningGateway,
  type StartGatewayOptions,
} from './server.js';
