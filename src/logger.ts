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
