import './young-generation.ts';
import { printSchema } from 'graphql';
import { type App, createApp, waitingFor } from './app.ts';
import { type Config, loadConfig } from './config.ts';
import { isConnectionFailure, openDatabase, waitForDatabase } from './db/database.ts';
import { migrateToLatest } from './db/migrator.ts';
import { createLogger } from './logger.ts';
import { startMetricsServer } from './metrics.ts';
import { type RunningServer, startServer } from './server.ts';

const USAGE = `usage: node --no-node-snapshot dist/src/main.js <command>, or the npm script beside it
  serve                   start the gateway (the default; npm start)
  migrate                 bring the database up to date, then exit (npm run migrate)
  print-schema            print the GraphQL schema (npm run schema writes it to schema.graphql)
  rotate-encryption-key   seal everything again under NEW_ENCRYPTION_KEY (npm run rotate-encryption-key)
  copy-to-postgres        copy the embedded database in DATA_DIR into DATABASE_URL (npm run copy-to-postgres)
  create-management-key   print a new management key for the tenant TENANT_ID names, or the only one
                          (npm run create-management-key): the way back into a tenant that lost its keys
Settings come from the environment: see the README's Configuration table.`;

async function main(command = 'serve'): Promise<void> {
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate':
      return migrate();
    case 'rotate-encryption-key': {
      const { runKeyRotation } = await import('./tokens/key-rotation.ts');
      console.log(await runKeyRotation(loadConfig(), process.env.NEW_ENCRYPTION_KEY));
      return;
    }
    case 'copy-to-postgres': {
      const { runCopyToPostgres } = await import('./db/copy-database.ts');
      console.log(await runCopyToPostgres(loadConfig()));
      return;
    }
    case 'create-management-key': {
      const { runCreateManagementKey } = await import('./auth/management-key-command.ts');
      console.log(await runCreateManagementKey(loadConfig(), process.env.TENANT_ID));
      return;
    }
    case 'print-schema': {
      const { schema } = await import('./graphql/schema.ts');
      process.stdout.write(`${printSchema(schema)}\n`);
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      console.error(`unknown command: ${command}\n${USAGE}`);
      process.exitCode = 2;
  }
}

async function migrate(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase(config.database);
  try {
    // An init container runs this beside a Postgres that may still be starting, as `serve` does.
    await waitForDatabase(database, config.databaseStartTimeoutMs, waitingFor(createLogger(config.logLevel)));
    const applied = await migrateToLatest(database.db);
    console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Database is up to date.');
  } finally {
    await database.close();
  }
}

async function serve(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  // Started here and awaited below and by `stop`, so that a signal at any point of the start closes what has started.
  // A signal while the start waits for Postgres (DATABASE_START_TIMEOUT_MS) ends the wait rather than SHUTDOWN_TIMEOUT_MS.
  const startAborted = new AbortController();
  const starting = createApp(config, log, {
    signal: startAborted.signal,
    // Its encryption key was rotated away while it ran (src/app.ts): it shuts down as on a signal, and exits 1.
    onFatal: () => {
      process.exitCode = 1;
      void stop('fatal');
    },
  });
  const listening = starting.then((app) =>
    // A port in use: the database and the worker threads are closed (and the data directory unlocked) before exiting.
    listen(app, config).catch(async (error: unknown) => {
      await app.close().catch(() => {});
      throw error;
    }),
  );

  // Awaited below; a failed app start is reported from `starting`, so this one is not also an unhandled rejection.
  listening.catch(() => {});

  let stoppingSince = 0;
  const stop = async (signal: string) => {
    if (stoppingSince > 0) {
      // Ctrl-C reaches npm and the gateway at once, and npm passes it on: the same keypress arrives twice. A signal
      // a second or more after the first is someone insisting: exit now.
      if (Date.now() - stoppingSince < 1_000) return;
      log.warn({ signal }, 'signalled again while shutting down; exiting now');
      process.exit(1);
    }
    stoppingSince = Date.now();
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    startAborted.abort(new Error(`stopped by ${signal} while starting`));
    // The limit below is for the shutdown, not for a start in progress: the abort above ends a wait for Postgres,
    // but creating the embedded database cannot be cut short (about 10 s, longer on a busy machine), and exiting in
    // the middle of it would leave a half-made data directory. A second signal still exits at once.
    await starting.catch(() => undefined);
    const forced = setTimeout(() => {
      log.error({ shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutdown took over SHUTDOWN_TIMEOUT_MS; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    forced.unref();
    // The job runner stops claiming now, not once HTTP has drained: a request it claimed meanwhile would be cut off
    // by the shutdown's limit and fail as interrupted (never retried), while another instance could have run it.
    // Its runs in flight go on, and app.close() waits for them.
    (await starting.catch(() => undefined))?.runner.stopClaiming();
    await (await listening.catch(() => undefined))?.close();
    await (await starting.catch(() => undefined))?.close().catch(() => {});
    log.info('stopped');
  };
  // Before anything is awaited: a signal during the start must not find Node's default handler, which ends the
  // process on the spot (with the embedded database open).
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  // A start given up on for a signal is a shutdown like any other: `stop` reports it.
  const app = await starting.catch((error: unknown) => {
    if (startAborted.signal.aborted && error === startAborted.signal.reason) return null;
    throw error;
  });
  if (!app) return;
  const server = await listening;
  // Only once listening: the first tenant's keys are shown once, and a start that fails before could not show them.
  // A shutdown that began meanwhile closes the database under it: then there is nothing to report.
  const created = await app.services.auth.bootstrapIfEmpty(config.bootstrap).catch((error: unknown) => {
    if (stoppingSince > 0) return null;
    throw error;
  });
  if (created) printBootstrapKeys(created, server.url);
}

/** The GraphQL server, and the metrics endpoint beside it when METRICS_PORT is set; closing one closes both. */
async function listen(app: App, config: Config): Promise<RunningServer> {
  const server = await startServer(app, { port: config.port, host: config.host });
  if (!app.metrics || config.metricsPort === undefined) return server;
  const metrics = await startMetricsServer(app.metrics, {
    port: config.metricsPort,
    host: config.host,
    log: app.log,
    token: config.metricsToken,
  }).catch(async (error: unknown) => {
    await server.close();
    throw error;
  });
  return {
    ...server,
    async close() {
      await metrics.close();
      await server.close();
    },
  };
}

/** Printed once, on the first start of an empty database: the only time these keys can be seen. */
function printBootstrapKeys(
  created: { managementKey: string; privateKey: string; tenant: { id: string } },
  url: string,
) {
  const lines = [
    '',
    '================================================================================',
    ' reactor-gateway: first start, a default tenant was created.',
    ` Tenant id:           ${created.tenant.id}`,
    ` MANAGEMENT API key:  ${created.managementKey}`,
    ` PRIVATE API key:     ${created.privateKey}`,
    ' These keys are shown only now (only their hashes are stored). Keep them.',
    ` GraphiQL:            ${url}  (send the key as header BT-API-KEY)`,
    '================================================================================',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main(process.argv[2]).catch((error: unknown) => {
  console.error(describeFailure(error));
  process.exit(1);
});

/**
 * What a failed command prints. pg's own message for a database it cannot reach ("connect ECONNREFUSED
 * 127.0.0.1:5432", 'role "x" does not exist') does not say which setting led there: this names the URL (without
 * its password) and what to check.
 */
function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (!isConnectionFailure(error)) return message;
  let database: Config['database'];
  try {
    database = loadConfig().database;
  } catch {
    return message;
  }
  if (database.kind !== 'postgres' || !URL.canParse(database.url)) return message;
  const where = new URL(database.url);
  if (where.password) where.password = '***';
  return (
    `Could not connect to the database at ${where} (DATABASE_URL): ${message}. Check that Postgres runs there and ` +
    'accepts this user and database; without DATABASE_URL the gateway uses its embedded database.'
  );
}
