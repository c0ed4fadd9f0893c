import pino from 'pino';

/**
 * Structured JSON logs. Redaction is the last line of defence: code should never hand keys or token data to the
 * logger, but if a header or an args object slips in, these paths are censored.
 */
export function createLogger(level: string) {
  return pino({
    level,
    base: { service: 'reactor-gateway' },
    redact: {
      paths: [
        'req.headers["bt-api-key"]',
        'req.headers.authorization',
        'headers["bt-api-key"]',
        'headers.authorization',
        'apiKey',
        '*.apiKey',
        'key',
        '*.key',
        'args',
        '*.args',
        'data',
        '*.data',
        'variables',
        '*.variables',
        'configuration',
        '*.configuration',
      ],
      censor: '[redacted]',
    },
  });
}

export type Logger = pino.Logger;

/** The logger a request carries: its bindings (request id, tenant, application) on every line. */
export interface RequestLog {
  error(details: object, message: string): void;
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

/**
 * Most requests never log, and a pino child costs a measurable share of a trivial request, so the child is made on
 * the first line written. A class, not closures: under tsx every named closure made per request is also renamed
 * with `Object.defineProperty` (esbuild's keepNames), which profiled at 15-20% of a trivial query's GraphQL time.
 * (A getter for the child would not do: envelop copies the context with Object.assign, which reads it.)
 */
class LazyRequestLog implements RequestLog {
  private child: Logger | undefined;

  constructor(
    private readonly root: Logger,
    private readonly bindings: Record<string, unknown>,
  ) {}

  error(details: object, message: string): void {
    this.logger().error(details, message);
  }

  warn(details: object, message: string): void {
    this.logger().warn(details, message);
  }

  info(details: object, message: string): void {
    this.logger().info(details, message);
  }

  private logger(): Logger {
    this.child ??= this.root.child(this.bindings);
    return this.child;
  }
}

export function requestLog(root: Logger, bindings: Record<string, unknown>): RequestLog {
  return new LazyRequestLog(root, bindings);
}
