import { hkdfSync } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { KyselyPlugin } from 'kysely';
import { createAuthService } from './auth/service.ts';
import type { Config } from './config.ts';
import { type DatabaseHandle, type DatabaseTarget, openDatabase, waitForDatabase } from './db/database.ts';
import { migrateToLatest } from './db/migrator.ts';
import { ServiceUnavailableError } from './errors.ts';
import { createFormulaService } from './formulas/service.ts';
import { maxRequestBodyBytes } from './graphql/fast-path.ts';
import { createHttpStreams } from './graphql/stream-keys.ts';
import { apiKeyFrom, createGraphQLHandler, type GraphQLHandler } from './graphql/yoga.ts';
import { createIdempotency, type Idempotency } from './idempotency/handler.ts';
import { createEventHub } from './invocations/events.ts';
import type { PipelineDeps } from './invocations/pipeline.ts';
import { createReactorCache } from './invocations/reactor-cache.ts';
import { createRequestSealing } from './invocations/request-sealing.ts';
import { createJobRunner, type JobRunner } from './invocations/runner.ts';
import { createInvocationService } from './invocations/service.ts';
import { countUnfinished } from './invocations/store.ts';
import { createWebhookSender } from './invocations/webhooks.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type Metrics, NO_METRICS } from './metrics.ts';
import { createReactorService } from './reactors/service.ts';
import { createFormulaRuntime } from './runtime/pool.ts';
import { createProcessRuntime } from './runtime/process-runtime.ts';
import { assertPatchedIsolatedVm } from './runtime/sandbox/patched-isolated-vm.ts';
import type { Services } from './services.ts';
import { MasterKeyMismatchError, verifyMasterKey } from './tokens/key-check.ts';
import { createTokenService } from './tokens/service.ts';
import { createTokenCache } from './tokens/token-cache.ts';
import { createVault, loadMasterKey, type Vault } from './tokens/vault.ts';
import { createTransactionService } from './transactions/service.ts';
import { startSweeper } from './transactions/sweeper.ts';

/** Everything a gateway process runs, built in one place and closed in reverse order. */
export interface App {
  config: Config;
  log: Logger;
  database: DatabaseHandle;
  services: Services;
  yoga: GraphQLHandler;
  /** Mutations sent with an Idempotency-Key (src/idempotency/handler.ts), served by startServer. */
  idempotency: Idempotency;
  /** This process's async job runner (tests stop and start it to pick which instance runs jobs). */
  runner: JobRunner;
  /** Prometheus metrics, served by startMetricsServer; null unless METRICS_PORT is set. */
  metrics: Metrics | null;
  /** Tells the app where it is reachable, for `req.bt` (set by startServer unless PUBLIC_URL is configured). */
  setSelfUrl(url: string): void;
  /** Ends the app's subscriptions streamed over HTTP (server-sent events); a stopping server calls it. */
  endStreams(): Promise<void>;
  close(): Promise<void>;
}

export interface AppOptions {
  /** Overrides config.database (tests use an in-memory PGlite or a fresh Postgres database). */
  database?: DatabaseTarget;
  /** Wraps every query (tests count them to prove batching). */
  queryPlugin?: KyselyPlugin;
  /** The gateway cannot go on (its encryption key was rotated away): `serve` shuts it down with exit code 1. */
  onFatal?: (error: Error) => void;
  /** Aborted: a start still waiting for Postgres gives up with the signal's reason (a shutdown during the start). */
  signal?: AbortSignal;
  /** How often subscriptions over HTTP check their key again (src/graphql/stream-keys.ts); tests shorten it. */
  keyRecheckMs?: number;
  /** How long an Idempotency-Key outlives its dead gateway (src/idempotency/handler.ts); tests shorten it. */
  idempotencyLeaseMs?: number;
}

export async function createApp(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
  assertPatchedIsolatedVm();
  const target = options.database ?? config.database;
  if (target.kind === 'pglite' && target.dataDir) {
    // The database files hold token metadata, masks and key hashes in the clear (token data is sealed): only this
    // user may read them. An existing directory is left as it is, with a warning.
    mkdirSync(target.dataDir, { recursive: true, mode: 0o700 });
    warnIfShared(path.dirname(target.dataDir), log);
  }
  const database = await openDatabase(target);
  if (options.queryPlugin) database.db = database.db.withPlugin(options.queryPlugin);
  const closers: (() => Promise<void>)[] = [() => database.close()];
  try {
    await waitForDatabase(database, config.databaseStartTimeoutMs, waitingFor(log), options.signal);
    await migrateToLatest(database.db);
    const masterKey = loadMasterKey({
      encryptionKey: config.encryptionKey,
      dataDir: config.dataDir,
      embedded: config.embedded,
    });
    const vault = createVault(masterKey);
    // Before the key check: a rotation either sees this gateway and refuses, or runs first and this check then
    // refuses the old key (src/tokens/key-rotation.ts).
    await database.holdGatewayPresence();
    await verifyMasterKey(database.db, masterKey, vault);
    closers.push(recheckKeyOnReconnect(database, masterKey, vault, log, options.onFatal));
    const runtimeOptions = {
      threads: config.runtime.threads,
      memoryLimitMb: config.runtime.memoryLimitMb,
      spinMicros: config.runtime.spinMicros,
      egressAllow: config.runtime.egressAllow,
      fetchTimeoutMs: config.runtime.fetchTimeoutMs,
    };
    const runtime =
      config.runtime.isolation === 'process'
        ? createProcessRuntime(runtimeOptions, log)
        : createFormulaRuntime(runtimeOptions);
    closers.push(() => runtime.close());
    // Bound once the reactor cache exists (it needs the reactor service, which reports changes to it).
    let onReactorChange: (change: { reactor?: string; formula?: string }) => void = () => {};
    const tokenCache = await createTokenCache(database.notifier, log, { max: config.tokens.cacheSize });
    closers.push(() => tokenCache.close());
    const sealing = createRequestSealing(vault, config.exposeFormulaLogs);
    const core = {
      config,
      runtime,
      auth: createAuthService({
        db: database.db,
        adminApiKey: config.adminApiKey,
        invocationKeySecret: deriveKey(masterKey, 'invocation-keys'),
        maxNameLength: config.limits.maxNameLength,
        rateLimit: config.limits.rateLimit,
      }),
      tokens: createTokenService({
        db: database.db,
        vault,
        maxTokensPerRequest: config.limits.maxTokensPerRequest,
        cache: tokenCache,
      }),
      transactions: createTransactionService({
        db: database.db,
        ttlMs: config.transactions.ttlMs,
        onTokensChanged: tokenCache.invalidateTenant,
      }),
      formulas: createFormulaService({
        db: database.db,
        runtime,
        limits: config.limits,
        onChange: (c) => onReactorChange(c),
      }),
      reactors: createReactorService({ db: database.db, onChange: (c) => onReactorChange(c) }),
    };
    const webhookSecretFor = (tenantId: string) => deriveKey(masterKey, `webhooks:${tenantId}`);
    const events = createEventHub(database.notifier, log, {
      singleProcess: database.kind === 'pglite',
      errorSeal: sealing.eventError,
    });
    await events.start();
    closers.push(() => events.close());
    /** Where `req.bt` reaches this gateway; startServer fills it in when PUBLIC_URL does not say. */
    const selfEndpoint = { url: config.publicUrl ?? null };
    const pipeline: PipelineDeps = {
      runtime,
      tokens: core.tokens,
      transactions: core.transactions,
      maxTokensPerRequest: config.limits.maxTokensPerRequest,
      btFor: (applicationId) =>
        applicationId && selfEndpoint.url
          ? { endpoint: selfEndpoint.url, apiKey: core.auth.invocationKeyFor(applicationId) }
          : null,
    };
    const reactorCache = await createReactorCache(core.reactors, database.notifier, log);
    onReactorChange = reactorCache.invalidate;
    closers.push(() => reactorCache.close());
    // Only with METRICS_PORT: off, the invocation paths call a function that does nothing.
    const metrics =
      config.metricsPort === undefined
        ? null
        : createMetrics({
            countUnfinished: () => countUnfinished(database.db),
            runtimeStats: () => runtime.stats(),
            log,
          });
    const services: Services = {
      ...core,
      invocations: createInvocationService({
        db: database.db,
        config,
        reactors: reactorCache,
        pipeline,
        events,
        webhookSecret: webhookSecretFor,
        sealing,
        metrics: metrics ?? NO_METRICS,
      }),
    };
    const webhooks = createWebhookSender({
      secretFor: webhookSecretFor,
      egressAllow: config.runtime.egressAllow,
      log,
    });
    const runner = createJobRunner({
      db: database.db,
      auth: core.auth,
      reactors: reactorCache,
      pipeline,
      events,
      webhooks,
      sealing,
      metrics: metrics ?? NO_METRICS,
      log,
      options: {
        concurrency: config.jobs.concurrency,
        reservedSlots: config.jobs.reservedSlots,
        maxQueueMs: config.jobs.maxQueueMs,
        leaseGraceMs: config.jobs.leaseMs,
        resultRetentionMs: config.jobs.resultRetentionMs,
        pollIntervalMs: 1_000,
        sweepIntervalMs: Math.min(config.sweepIntervalMs, config.jobs.leaseMs),
      },
    });
    runner.start();
    // Closed before the runtime and the database it needs (closers run in reverse).
    closers.push(async () => {
      await runner.stop();
      await webhooks.drain();
    });
    const streams = createHttpStreams((key) => core.auth.authenticate(key), apiKeyFrom, options.keyRecheckMs);
    const yoga = createGraphQLHandler(services, log, streams);
    const idempotency = createIdempotency({
      db: database.db,
      vault,
      log,
      authenticate: (key) => core.auth.authenticate(key),
      isAdminKey: (key) => core.auth.isAdminKey(key),
      admit: (principal) => core.auth.admit(principal),
      fetch: (request, serverContext) => yoga.fetch(request, serverContext),
      maxBodyBytes: maxRequestBodyBytes(config.limits.maxArgsBytes),
      retentionMs: config.idempotencyRetentionMs,
      leaseMs: options.idempotencyLeaseMs ?? 30_000,
    });
    const sweep = async () => ({
      ...(await services.transactions.sweepExpired()),
      purgedIdempotentResponses: await idempotency.purgeExpired(),
    });
    closers.push(startSweeper(sweep, config.sweepIntervalMs, log));
    return {
      config,
      log,
      database,
      services,
      yoga,
      idempotency,
      runner,
      metrics,
      setSelfUrl(url) {
        selfEndpoint.url ??= url;
      },
      endStreams: () => streams.endAll(),
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => {});
    throw error;
  }
}

function warnIfShared(dataDir: string, log: Logger): void {
  const mode = statSync(dataDir).mode & 0o777;
  if (mode & 0o077) {
    log.warn(
      { dataDir, mode: mode.toString(8) },
      'DATA_DIR can be read by other users of this machine; its files hold token metadata, masks and key hashes: chmod 700 it',
    );
  }
}

/** Independent sub-keys of the master key, one per purpose, so no key is used for two things. */
function deriveKey(masterKey: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), `reactor-gateway:${purpose}`, 32));
}

/** Logs each wait for a Postgres that does not accept connections yet (waitForDatabase). */
export function waitingFor(log: Logger): (error: unknown, waitedMs: number) => void {
  return (error, waitedMs) =>
    log.warn(
      { code: (error as { code?: unknown }).code, waitedMs },
      'waiting for the database to accept connections (DATABASE_START_TIMEOUT_MS)',
    );
}

/**
 * While the listening session is reconnecting, this gateway holds no presence lock, so a key rotation (which refuses
 * beside any gateway holding it) could run then. Once the session holds the lock again (the listener takes it before
 * telling anyone it is back), the key is checked again: a gateway whose key was rotated away stops sealing and
 * opening anything, and shuts down, instead of sealing new tokens under a key the database no longer uses.
 *
 * A check that fails for another reason (the pool's connection dropped, a statement timed out) has answered nothing,
 * so it is tried again, 1 s later and then up to every 30 s, until it answers or a newer reconnection starts over.
 */
function recheckKeyOnReconnect(
  database: DatabaseHandle,
  masterKey: Buffer,
  vault: Vault,
  log: Logger,
  onFatal: ((error: Error) => void) | undefined,
): () => Promise<void> {
  let round = 0;
  let retry: NodeJS.Timeout | undefined;
  const check = (ofRound: number, attempt: number) => {
    verifyMasterKey(database.db, masterKey, vault).catch((error: unknown) => {
      if (ofRound !== round) return;
      if (!(error instanceof MasterKeyMismatchError)) {
        const delayMs = Math.min(30_000, 1000 * 2 ** attempt);
        log.warn({ err: error, retryInMs: delayMs }, 'could not check the encryption key after reconnecting');
        retry = setTimeout(() => check(ofRound, attempt + 1), delayMs);
        return;
      }
      // A domain error: SERVICE_UNAVAILABLE wherever it surfaces (a typed result of `react`, a GraphQL error
      // elsewhere), and not logged again per request. Another instance, or this one restarted with the new key, can
      // serve the request.
      vault.revoke(
        new ServiceUnavailableError('This gateway is stopping: its encryption key is no longer the database key.'),
      );
      log.fatal({ err: error }, 'the encryption key was rotated while this gateway was disconnected; stopping');
      onFatal?.(error);
    });
  };
  const stop = database.notifier.onReconnect(() => {
    clearTimeout(retry);
    check(++round, 0);
  });
  return async () => {
    round++;
    clearTimeout(retry);
    stop();
  };
}
