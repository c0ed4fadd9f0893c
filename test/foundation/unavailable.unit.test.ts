import { describe, expect, it, vi } from 'vitest';
import { isDatabaseUnavailable } from '../../src/db/unavailable.ts';
import { loggingMask } from '../../src/graphql/graphql-errors.ts';
import type { Logger } from '../../src/logger.ts';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it('knows a database that is not there or went away', () => {
    for (const error of [
      withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      withCode('read ECONNRESET', 'ECONNRESET'),
      new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], ''),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      withCode('terminating connection due to administrator command', '57P01'),
      withCode('the database system is starting up', '57P03'),
      withCode('connection failure', '08006'),
    ]) {
      expect(isDatabaseUnavailable(error), error.message).toBe(true);
    }
  });

  it('leaves everything else to the error mask: queries the database refused, bugs, non-errors', () => {
    for (const error of [
      withCode('duplicate key value violates unique constraint', '23505'),
      withCode('syntax error at or near "x"', '42601'),
      withCode('invalid byte sequence for encoding "UTF8": 0x00', '22021'),
      new TypeError("Cannot read properties of undefined (reading 'id')"),
      'Connection terminated unexpectedly',
      null,
    ]) {
      expect(isDatabaseUnavailable(error)).toBe(false);
    }
  });
});

describe('loggingMask during an outage', () => {
  function capture() {
    const lines: { fields: Record<string, unknown>; message: string }[] = [];
    const log = { error: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }) };
    return { lines, log: log as unknown as Logger };
  }

  it('logs one line per window for the database being away, counting the rest, and every other error', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const { lines, log } = capture();
      const mask = loggingMask(log, 10_000);
      const away = () => mask(new Error('Connection terminated unexpectedly'));
      for (let i = 0; i < 50; i++) expect(away().extensions.code).toBe('SERVICE_UNAVAILABLE');
      expect(mask(new TypeError('a bug')).extensions.code).toBe('INTERNAL_SERVER_ERROR');
      expect(mask(new TypeError('another bug')).extensions.code).toBe('INTERNAL_SERVER_ERROR');
      expect(lines.map((line) => line.message.split(':')[0])).toEqual([
        'the database is unavailable',
        'unexpected error while executing GraphQL',
        'unexpected error while executing GraphQL',
      ]);
      expect(lines[0]?.fields.unloggedSinceLastReport).toBe(0);

      vi.advanceTimersByTime(10_000);
      away();
      expect(lines).toHaveLength(4);
      expect(lines[3]?.fields.unloggedSinceLastReport).toBe(49);
    } finally {
      vi.useRealTimers();
    }
  });
});
