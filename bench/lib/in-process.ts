import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { graphQLRequest } from './graphql-request.ts';

/** The gateway's own code in this process: GraphQL through Yoga (no HTTP), and its database for bulk inserts. */
export interface InProcessGateway {
  graphql<T = Record<string, any>>(query: string, variables: Record<string, unknown>, key: string): Promise<T>;
  db: Kysely<any>;
}

/**
 * Opens the app `src/main.ts serve` would open on this environment (the same config, migrations and bootstrap
 * tenant), hands it to `use`, and closes it. Data written here is written by the service itself, and no gateway
 * process has to be started, stopped and started again around a bulk insert (a PGlite directory belongs to one
 * process): that restart was most of the quick run's start-up.
 */
export async function withInProcessGateway<T>(
  env: Record<string, string>,
  use: (gateway: InProcessGateway) => Promise<T>,
): Promise<T> {
  // One sandbox thread is enough for creating a few formulas, and no async jobs are taken here.
  const config = loadConfig({ ...env, RUNTIME_THREADS: '1', JOB_CONCURRENCY: '0' });
  const app = await createApp(config, createLogger(config.logLevel));
  try {
    await app.services.auth.bootstrapIfEmpty(config.bootstrap);
    return await use({
      db: app.database.db,
      graphql: (query, variables, key) =>
        graphQLRequest(
          (init) => app.yoga.fetch('http://in-process/graphql', init, { requestId: randomUUID() }),
          query,
          variables,
          key,
        ),
    });
  } finally {
    await app.close();
  }
}
