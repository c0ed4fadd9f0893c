import { type Kysely, sql } from 'kysely';

/**
 * `updateToken` inside a transaction: the new version of a committed token waits here until the transaction commits
 * (it then replaces the token's columns) or rolls back or expires (it is dropped). Inside the transaction, reads and
 * detokenization see this version; outside, the token is unchanged. One row per token: a token is held by at most
 * one open transaction at a time (a row left by an expired transaction the sweeper has not reached holds nothing,
 * and the next update replaces it). The columns are the token's own, sealed and computed the same way. Tokens gain
 * `modified_by` and `modified_at`, which an update sets (on commit, to the pending update's).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Who changed a token last, and when (null until its first update), as reactors have them.
  await db.schema
    .alterTable('tokens')
    .addColumn('modified_by', 'uuid')
    .addColumn('modified_at', 'timestamptz')
    .execute();
  await db.schema
    .createTable('token_updates')
    .addColumn('token_id', 'uuid', (col) => col.primaryKey().references('tokens.id').onDelete('cascade'))
    .addColumn('tenant_id', 'uuid', (col) => col.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('transaction_id', 'uuid', (col) => col.notNull().references('transactions.id').onDelete('cascade'))
    .addColumn('data', 'bytea', (col) => col.notNull())
    .addColumn('mask', 'jsonb')
    .addColumn('fingerprint', 'text', (col) => col.notNull())
    .addColumn('metadata', 'jsonb', (col) => col.notNull())
    .addColumn('containers', sql`text[]`, (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('modified_by', 'uuid', (col) => col.notNull())
    .addColumn('modified_at', 'timestamptz', (col) => col.notNull())
    .execute();
  // Commit and rollback find a transaction's pending updates.
  await db.schema.createIndex('token_updates_transaction_id').on('token_updates').column('transaction_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('token_updates').execute();
  await db.schema.alterTable('tokens').dropColumn('modified_by').dropColumn('modified_at').execute();
}
