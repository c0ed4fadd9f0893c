import { type Kysely, sql } from 'kysely';

/**
 * What makes a retry the same request (src/idempotency/handler.ts), sealed with the tenant's key instead of a plain
 * sha256 of the body: the body of a `createToken` holds a card number whose mask (bin, last four) is in the tokens
 * table, which leaves about a million candidates, and a plain hash gave the number back in under a second. Rows
 * written before keep their plain `request_hash` until they expire (24 h by default), and are still compared. And
 * `claim_token`: which claim holds a key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('idempotent_requests').addColumn('sealed_fingerprint', 'bytea').execute();
  // Which claim holds a key: a request whose lease lapsed (its database was away) must not complete or release the
  // claim of the retry that took the key over meanwhile (src/idempotency/store.ts).
  await db.schema.alterTable('idempotent_requests').addColumn('claim_token', 'text').execute();
  await db.schema
    .alterTable('idempotent_requests')
    .alterColumn('request_hash', (col) => col.dropNotNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Rows written since have no plain hash to go back to: forgotten, as an expired key would be.
  await sql`delete from idempotent_requests where request_hash is null`.execute(db);
  await db.schema
    .alterTable('idempotent_requests')
    .alterColumn('request_hash', (col) => col.setNotNull())
    .execute();
  await db.schema
    .alterTable('idempotent_requests')
    .dropColumn('sealed_fingerprint')
    .dropColumn('claim_token')
    .execute();
}
