import type { FastifyBaseLogger } from 'fastify';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type LogArgs = Parameters<FastifyBaseLogger['info']>;
type Parent = FastifyBaseLogger & { isLevelEnabled(level: string): boolean };

/**
 * A request's logger that becomes a real pino child (with the request id bound) only when something is logged at a
 * level the parent has enabled. fastify makes one child per request; at the usual `warn` level nearly every request
 * logs nothing, so this saves binding and serialising the request id on each of them. What is logged is unchanged.
 */
export class LazyChildLogger {
  readonly #parent: Parent;
  readonly #bindings: Record<string, unknown>;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: Parent, bindings: Record<string, unknown>) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  #real(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings));
  }

  #log(level: Level, args: LogArgs): void {
    if (this.#child) (this.#child[level] as (...a: LogArgs) => void)(...args);
    else if (this.#parent.isLevelEnabled(level)) (this.#real()[level] as (...a: LogArgs) => void)(...args);
  }

  get level(): string {
    return (this.#child ?? this.#parent).level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  fatal(...args: LogArgs): void {
    this.#log('fatal', args);
  }
  error(...args: LogArgs): void {
    this.#log('error', args);
  }
  warn(...args: LogArgs): void {
    this.#log('warn', args);
  }
  info(...args: LogArgs): void {
    this.#log('info', args);
  }
  debug(...args: LogArgs): void {
    this.#log('debug', args);
  }
  trace(...args: LogArgs): void {
    this.#log('trace', args);
  }
  silent(): void {}

  child(bindings: Record<string, unknown>, options?: Record<string, unknown>): FastifyBaseLogger {
    return this.#real().child(bindings, options);
  }
}

/**
 * fastify `childLoggerFactory` making {@link LazyChildLogger}s; falls back to an eager child when the route sets its
 * own level or serializers, or the parent cannot tell which levels are enabled.
 */
export function lazyChildLoggerFactory(
  logger: FastifyBaseLogger,
  bindings: Record<string, unknown>,
  options: Record<string, unknown>,
): FastifyBaseLogger {
  const parent = logger as Partial<Parent> & FastifyBaseLogger;
  if (typeof parent.isLevelEnabled !== 'function' || options.level !== undefined || options.serializers !== undefined) {
    return logger.child(bindings, options);
  }
  return new LazyChildLogger(parent as Parent, bindings) as unknown as FastifyBaseLogger;
}
