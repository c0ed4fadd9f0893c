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
 * the first line written. (A getter would not do: envelop copies the context with Object.assign, which reads it.)
 */
export function requestLog(root: Logger, bindings: Record<string, unknown>): RequestLog {
  let child: Logger | undefined;
  const logger = () => {
    child ??= root.child(bindings);
    return child;
  };
  return {
    error: (details, message) => logger().error(details, message),
    warn: (details, message) => logger().warn(details, message),
    info: (details, message) => logger().info(details, message),
  };
}
