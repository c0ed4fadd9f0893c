import { type Kysely, sql } from 'kysely';

/**
 * An async request's args and its run's outcome (raw, tokens, error), sealed with the tenant's data key like token
 * data (src/invocations/request-sealing.ts). Args may carry card numbers sent without a token, and a formula's `raw`
 * or error message the detokenized data it was given; in the clear they sat in the database files and every backup
 * for the retention period. Rows written before keep their plain columns, which are still read.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('reactor_requests')
    .addColumn('sealed_args', 'bytea')
    .addColumn('sealed_outcome', 'bytea')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping the columns would lose what they hold: queued requests would run without their args.
  const { rows } = await sql<{ sealed: boolean }>`select exists (select from reactor_requests
    where sealed_args is not null or sealed_outcome is not null) as sealed`.execute(db);
  if (rows[0]?.sealed) {
    throw new Error('Async requests hold sealed args or results: let them finish and be purged before going back.');
  }
  await db.schema.alterTable('reactor_requests').dropColumn('sealed_args').dropColumn('sealed_outcome').execute();
}
