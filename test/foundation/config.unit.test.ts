import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';

describe('EXPOSE_FORMULA_LOGS', () => {
  it.each([
    [{}, true],
    [{ NODE_ENV: 'production' }, false],
    [{ EXPOSE_FORMULA_LOGS: 'false' }, false],
    [{ EXPOSE_FORMULA_LOGS: '0' }, false],
    [{ NODE_ENV: 'production', EXPOSE_FORMULA_LOGS: 'true' }, true],
    [{ NODE_ENV: 'production', EXPOSE_FORMULA_LOGS: '1' }, true],
  ])('%o: formula logs shown = %s (unset follows NODE_ENV, set wins)', (env, shown) => {
    expect(loadConfig(env).exposeFormulaLogs).toBe(shown);
  });
});

describe('DATABASE_URL', () => {
  it('takes a Postgres URL, and refuses anything else without repeating it (it may hold a password)', () => {
    for (const url of ['postgres://u:p@db:5432/x', 'postgresql://db/x', 'socket:/var/run/postgresql?db=x'])
      expect(loadConfig({ DATABASE_URL: url }).database).toMatchObject({ kind: 'postgres', url });
    expect(loadConfig({ DATABASE_URL: '' }).database.kind).toBe('pglite');
    for (const url of ['not-a-url', 'db.internal:5432', 'mysql://u:hunter2@db/x']) {
      expect(() => loadConfig({ DATABASE_URL: url })).toThrow(/DATABASE_URL: must be a Postgres URL/);
      expect(() => loadConfig({ DATABASE_URL: url })).not.toThrow(/hunter2|not-a-url|db\.internal/);
    }
  });
});

describe('DB_POOL_TIMEOUT_MS', () => {
  it('bounds the wait for a pooled connection: 10 s unless set, at least 100 ms', () => {
    const url = 'postgres://db/x';
    expect(loadConfig({ DATABASE_URL: url }).database).toMatchObject({ poolSize: 10, poolTimeoutMs: 10_000 });
    expect(loadConfig({ DATABASE_URL: url, DB_POOL_TIMEOUT_MS: '2500' }).database).toMatchObject({
      poolTimeoutMs: 2_500,
    });
    expect(() => loadConfig({ DATABASE_URL: url, DB_POOL_TIMEOUT_MS: '50' })).toThrow(/DB_POOL_TIMEOUT_MS/);
  });
});

describe('FETCH_TIMEOUT_MS', () => {
  it('caps a formula fetch: 210 s (the longest run) unless set', () => {
    expect(loadConfig({}).runtime.fetchTimeoutMs).toBe(210_000);
    expect(loadConfig({ FETCH_TIMEOUT_MS: '5000' }).runtime.fetchTimeoutMs).toBe(5_000);
    expect(() => loadConfig({ FETCH_TIMEOUT_MS: '0' })).toThrow(/FETCH_TIMEOUT_MS/);
  });
});

describe('a setting set to nothing', () => {
  it('takes its default, as an unset one does (coerced, an empty number read as 0)', () => {
    const empty = { PORT: '', JOB_CONCURRENCY: ' ', TOKEN_CACHE_SIZE: '', JOB_RESERVED_SLOTS: '', EGRESS_ALLOW: '' };
    const config = loadConfig({ ...empty, DATABASE_START_TIMEOUT_MS: '' });
    const defaults = loadConfig({});
    expect(config.port).toBe(4000);
    expect(config.jobs.concurrency).toBe(8);
    expect(config.jobs.reservedSlots).toBe(defaults.jobs.reservedSlots);
    expect(config.tokens.cacheSize).toBe(10_000);
    expect(config.databaseStartTimeoutMs).toBe(30_000);
    // A 0 that is written stays 0.
    expect(loadConfig({ JOB_CONCURRENCY: '0', TOKEN_CACHE_SIZE: '0' })).toMatchObject({
      jobs: { concurrency: 0 },
      tokens: { cacheSize: 0 },
    });
  });
});

describe('SHUTDOWN_TIMEOUT_MS', () => {
  it('lets a react begun just before a SIGTERM finish by default, and can be set', () => {
    expect(loadConfig({}).shutdownTimeoutMs).toBe(35_000);
    expect(loadConfig({ REACT_TIMEOUT_MS: '60000' }).shutdownTimeoutMs).toBe(65_000);
    expect(loadConfig({ REACT_TIMEOUT_MS: '1000' }).shutdownTimeoutMs).toBe(15_000);
    expect(loadConfig({ SHUTDOWN_TIMEOUT_MS: '2000' }).shutdownTimeoutMs).toBe(2_000);
    // A Node timer past 2^31 - 1 ms fires at once: refused, and a default near it kept under it.
    expect(() => loadConfig({ SHUTDOWN_TIMEOUT_MS: '2147483648' })).toThrow(/SHUTDOWN_TIMEOUT_MS/);
    expect(loadConfig({ REACT_TIMEOUT_MS: '2147483647' }).shutdownTimeoutMs).toBe(2_147_483_647);
  });
});
