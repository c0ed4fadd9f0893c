import type { Kysely } from 'kysely';

/**
 * Who last changed an application (`updateApplication`, `regenerateApplicationKey`) and when, as reactors and tokens
 * have it; null for applications never changed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('applications')
    .addColumn('modified_by', 'uuid')
    .addColumn('modified_at', 'timestamptz')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('applications').dropColumn('modified_by').dropColumn('modified_at').execute();
}
