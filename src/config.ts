import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/**
 * Every setting and its default, parsed once from the environment. Nothing else in the code reads `process.env`.
 * The README's configuration table mirrors this file.
 */
const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

const listOf = z
  .string()
  .optional()
  .transform((value) =>
    (value ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );

/** The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days): a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

const environmentSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().default('0.0.0.0'),
  // Unset or empty: no metrics endpoint. Its own port, so the public listener never serves it.
  METRICS_PORT: optionalString.pipe(z.coerce.number<string | undefined>().int().min(0).max(65535).optional()),
  // Set: GET /metrics asks for `Authorization: Bearer <it>` (for a metrics port others on the network can reach).
  METRICS_TOKEN: optionalString,
  // Checked for its form only: anything else reached pg as a host name ("not-a-url" failed as ENOTFOUND base).
  // The message never repeats the value, which may hold a password.
  DATABASE_URL: optionalString.refine((url) => url === undefined || /^(postgres|postgresql|socket):/i.test(url), {
    message: 'must be a Postgres URL, postgres://user:password@host:5432/database (unset: the embedded database)',
  }),
  DATA_DIR: z.string().default('./.data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NODE_ENV: z.string().default('development'),
  ENCRYPTION_KEY: optionalString,
  ADMIN_API_KEY: optionalString,
  BOOTSTRAP_MANAGEMENT_KEY: optionalString,
  BOOTSTRAP_PRIVATE_KEY: optionalString,
  PUBLIC_URL: optionalString,
  DB_POOL_SIZE: z.coerce.number().int().min(1).default(10),
  DB_POOL_TIMEOUT_MS: z.coerce.number().int().min(100).max(2_147_483_647).default(10_000),
  // A gateway started beside its Postgres (docker compose, a pod) waits this long for it to accept connections.
  DATABASE_START_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  RUNTIME_THREADS: z.coerce.number().int().min(1).default(Math.max(1, os.availableParallelism())),
  RUNTIME_MEMORY_LIMIT_MB: z.coerce.number().int().min(8).default(128),
  // The longest a formula's fetch may wait; a fetch never outlasts its run, whose limit is the usual bound.
  FETCH_TIMEOUT_MS: z.coerce.number().int().min(100).max(2_147_483_647).default(210_000),
  RUNTIME_SPIN_US: z.coerce.number().int().min(0).max(10_000).default(200),
  // process: the sandbox's threads in a process of their own, without secrets (src/runtime/process-runtime.ts).
  RUNTIME_ISOLATION: z.enum(['thread', 'process']).default('thread'),
  REACT_TIMEOUT_MS: z.coerce.number().int().min(100).max(MAX_TIMER_MS).default(30_000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(MAX_TIMER_MS).optional(),
  MAX_ARGS_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(5 * 1024 * 1024),
  MAX_TOKENS_PER_REQUEST: z.coerce.number().int().min(1).default(100),
  WS_MAX_OPERATIONS: z.coerce.number().int().min(1).default(1_000),
  TOKEN_CACHE_SIZE: z.coerce.number().int().min(0).default(10_000),
  // Per application and per instance; 0 (the default) turns the limit off.
  RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).default(0),
  RATE_LIMIT_BURST: z.coerce.number().int().min(1).optional(),
  EGRESS_ALLOW: listOf,
  TRANSACTION_TTL_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(60 * 60 * 1000),
  // How long the response of a mutation sent with an Idempotency-Key answers its retries (src/idempotency/).
  IDEMPOTENCY_RETENTION_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(24 * 60 * 60 * 1000),
  RESULT_RETENTION_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(24 * 60 * 60 * 1000),
  JOB_LEASE_MS: z.coerce.number().int().min(1000).default(30_000),
  // 0: this instance serves the API but runs no async jobs (other instances on the same database do).
  JOB_CONCURRENCY: z.coerce.number().int().min(0).default(8),
  // Of an instance's free async slots, how many (the last) go only to tenants with no run on it (runner.ts).
  JOB_RESERVED_SLOTS: z.coerce.number().int().min(0).default(1),
  // How long a queued async request may wait for a runner; then it is failed, never run (runner.ts).
  JOB_MAX_QUEUE_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(24 * 60 * 60 * 1000),
  SWEEP_INTERVAL_MS: z.coerce.number().int().min(50).default(30_000),
  EXPOSE_FORMULA_LOGS: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    // Unset: follow NODE_ENV (shown in development). Set: it wins either way.
    .transform((value) => (value === undefined ? undefined : value === 'true' || value === '1')),
});

export type Environment = Record<string, string | undefined>;

export function loadConfig(env: Environment = process.env) {
  // A setting set to nothing (`PORT=` in a compose file or a .env) is unset and takes its default: coerced, it
  // would read as 0 (a random port, no async runner) where text settings already read it as unset.
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value === undefined || value.trim() !== ''));
  const parsed = environmentSchema.safeParse(set);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new Error(`Invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  const embedded = e.DATABASE_URL === undefined;
  return {
    port: e.PORT,
    host: e.HOST,
    /** Where GET /metrics (Prometheus) listens, on HOST; undefined: nowhere (src/metrics.ts). */
    metricsPort: e.METRICS_PORT,
    metricsToken: e.METRICS_TOKEN,
    /** Where `req.bt` and other self-calls reach this gateway's own GraphQL endpoint. */
    publicUrl: e.PUBLIC_URL,
    database: embedded
      ? ({ kind: 'pglite', dataDir: path.resolve(e.DATA_DIR, 'pgdata') } as const)
      : ({
          kind: 'postgres',
          url: e.DATABASE_URL!,
          poolSize: e.DB_POOL_SIZE,
          poolTimeoutMs: e.DB_POOL_TIMEOUT_MS,
        } as const),
    /** How long a start waits for Postgres to accept connections (src/db/database.ts `waitForDatabase`). */
    databaseStartTimeoutMs: e.DATABASE_START_TIMEOUT_MS,
    /**
     * How long a SIGTERM waits for in-flight requests before exiting anyway (src/main.ts). By default a `react`
     * begun just before it may still finish (its time limit, and 5 s to answer): cut off, its caller would never
     * learn whether the formula (a charge, say) ran.
     */
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS ?? Math.min(MAX_TIMER_MS, Math.max(15_000, e.REACT_TIMEOUT_MS + 5_000)),
    embedded,
    dataDir: path.resolve(e.DATA_DIR),
    logLevel: e.LOG_LEVEL,
    development: e.NODE_ENV !== 'production',
    encryptionKey: e.ENCRYPTION_KEY,
    adminApiKey: e.ADMIN_API_KEY,
    bootstrap: { managementKey: e.BOOTSTRAP_MANAGEMENT_KEY, privateKey: e.BOOTSTRAP_PRIVATE_KEY },
    runtime: {
      threads: e.RUNTIME_THREADS,
      memoryLimitMb: e.RUNTIME_MEMORY_LIMIT_MB,
      spinMicros: e.RUNTIME_SPIN_US,
      egressAllow: e.EGRESS_ALLOW,
      fetchTimeoutMs: e.FETCH_TIMEOUT_MS,
      isolation: e.RUNTIME_ISOLATION,
    },
    limits: {
      maxNameLength: 200,
      maxCodeLength: 50_000,
      maxArgsBytes: e.MAX_ARGS_BYTES,
      maxTokensPerRequest: e.MAX_TOKENS_PER_REQUEST,
      /** Operations (subscriptions, mostly) running at once on one graphql-ws socket. */
      wsMaxOperations: e.WS_MAX_OPERATIONS,
      reactTimeoutMs: e.REACT_TIMEOUT_MS,
      asyncTimeoutMs: { min: 10_000, max: 210_000, default: 10_000 },
      pageSize: { default: 20, max: 100 },
      /** Requests per application (src/auth/rate-limit.ts); the burst defaults to one second's worth. */
      rateLimit: {
        perSecond: e.RATE_LIMIT_PER_SECOND,
        burst: e.RATE_LIMIT_BURST ?? Math.ceil(e.RATE_LIMIT_PER_SECOND),
      },
    },
    transactions: { ttlMs: e.TRANSACTION_TTL_MS },
    tokens: { cacheSize: e.TOKEN_CACHE_SIZE },
    jobs: {
      leaseMs: e.JOB_LEASE_MS,
      concurrency: e.JOB_CONCURRENCY,
      reservedSlots: e.JOB_RESERVED_SLOTS,
      maxQueueMs: e.JOB_MAX_QUEUE_MS,
      resultRetentionMs: e.RESULT_RETENTION_MS,
    },
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    idempotencyRetentionMs: e.IDEMPOTENCY_RETENTION_MS,
    exposeFormulaLogs: e.EXPOSE_FORMULA_LOGS ?? e.NODE_ENV !== 'production',
  };
}

export type Config = ReturnType<typeof loadConfig>;
