import './young-generation.ts';
import { printSchema } from 'graphql';
import { createApp } from './app.ts';
import { loadConfig } from './config.ts';
import { openDatabase } from './db/database.ts';
import { migrateToLatest } from './db/migrator.ts';
import { createLogger } from './logger.ts';
import { startServer } from './server.ts';

const USAGE = 'usage: main.ts [serve | migrate | print-schema]';

async function main(command = 'serve'): Promise<void> {
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate':
      return migrate();
    case 'print-schema': {
      const { schema } = await import('./graphql/schema.ts');
      process.stdout.write(`${printSchema(schema)}\n`);
      return;
    }
    default:
      console.error(USAGE);
      process.exitCode = 2;
  }
}

async function migrate(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase(config.database);
  try {
    const applied = await migrateToLatest(database.db);
    console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Database is up to date.');
  } finally {
    await database.close();
  }
}

async function serve(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const app = await createApp(config, log);
  const created = await app.services.auth.bootstrapIfEmpty(config.bootstrap);
  // A port in use: the database and the worker threads are closed (and the data directory unlocked) before exiting.
  const server = await startServer(app, { port: config.port, host: config.host }).catch(async (error: unknown) => {
    await app.close().catch(() => {});
    throw error;
  });
  if (created) printBootstrapKeys(created, server.url);

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
    const forced = setTimeout(() => {
      log.error('shutdown took over 15 s; exiting');
      process.exit(1);
    }, 15_000);
    forced.unref();
    await server.close();
    await app.close();
    log.info('stopped');
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
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
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
