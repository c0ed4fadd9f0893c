import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('reactor_requests')
    .addColumn('id', 'uuid', (col) => col.primaryKey())
    .addColumn('tenant_id', 'uuid', (col) => col.notNull().references('tenants.id').onDelete('cascade'))
    // No foreign key to reactors: a result outlives a deleted reactor until it is purged.
    .addColumn('reactor_id', 'uuid', (col) => col.notNull())
    // The caller: the run detokenizes with this application's permissions.
    .addColumn('application_id', 'uuid', (col) => col.notNull())
    .addColumn('status', 'text', (col) =>
      col.notNull().check(sql`status in ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')`),
    )
    // The args exactly as sent, expressions intact: detokenized data is never written to the database.
    .addColumn('args', 'jsonb')
    .addColumn('timeout_ms', 'integer', (col) => col.notNull())
    .addColumn('callback_url', 'text')
    .addColumn('raw', 'jsonb')
    .addColumn('tokens', 'jsonb')
    .addColumn('error', 'jsonb')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('completed_at', 'timestamptz')
    // A RUNNING request whose lease passed belongs to a runner that died: it is failed, never run again.
    .addColumn('lease_until', 'timestamptz')
    .addColumn('runner_id', 'text')
    .execute();

  await db.schema
    .createIndex('reactor_requests_pending')
    .on('reactor_requests')
    .columns(['created_at'])
    .where(sql.ref('status'), '=', 'PENDING')
    .execute();
  await db.schema
    .createIndex('reactor_requests_running_lease')
    .on('reactor_requests')
    .columns(['lease_until'])
    .where(sql.ref('status'), '=', 'RUNNING')
    .execute();
  await db.schema
    .createIndex('reactor_requests_completed_at')
    .on('reactor_requests')
    .columns(['completed_at'])
    .execute();
  await db.schema
    .createIndex('reactor_requests_tenant_id_id')
    .on('reactor_requests')
    .columns(['tenant_id', 'id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('reactor_requests').execute();
}
