import { type Kysely, sql } from 'kysely';

/**
 * One row: a check value of the master key that sealed this database's tokens (src/tokens/key-check.ts). A gateway
 * started with another key finds it does not match and refuses to start, instead of failing every read of an old
 * token and sealing new ones under a key the other instances do not have.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('encryption_key_check')
    .addColumn('id', 'smallint', (col) => col.primaryKey().defaultTo(1).check(sql`id = 1`))
    .addColumn('check_value', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('encryption_key_check').execute();
}
