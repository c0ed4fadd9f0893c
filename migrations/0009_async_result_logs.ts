import type { Kysely } from 'kysely';

/**
 * The console output of an async run, kept with its result only while formula logs are exposed (development), and
 * sealed with the tenant's data key like token data (src/invocations/result-logs.ts). Null for every other row.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('reactor_requests').addColumn('logs', 'bytea').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('reactor_requests').dropColumn('logs').execute();
}
