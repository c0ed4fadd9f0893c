import { type Kysely, sql } from 'kysely';

/**
 * The containers an application's `token:use` covers (seeds: "token:use ... is required for each Container of
 * Tokens you wish to detokenize"). Null: every container, which is what applications created before had.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('applications').addColumn('token_containers', sql`text[]`).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('applications').dropColumn('token_containers').execute();
}
