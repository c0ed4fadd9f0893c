import { type Kysely, sql } from 'kysely';

/**
 * The responses of mutations sent with an `Idempotency-Key` (src/idempotency/): a retry with the same key gets the
 * stored response instead of running the mutation again. Keyed by the application whose API key sent it; the
 * response is sealed like token data, with the tenant's key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('idempotent_requests')
    .addColumn('application_id', 'uuid', (col) => col.notNull().references('applications.id').onDelete('cascade'))
    .addColumn('idempotency_key', 'text', (col) => col.notNull())
    .addColumn('tenant_id', 'uuid', (col) => col.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('request_hash', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull().check(sql`status in ('RUNNING', 'DONE')`))
    .addColumn('http_status', 'integer')
    .addColumn('content_type', 'text')
    .addColumn('response', 'bytea')
    .addColumn('locked_until', 'timestamptz', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('idempotent_requests_pkey', ['application_id', 'idempotency_key'])
    .execute();
  await db.schema.createIndex('idempotent_requests_expires_at').on('idempotent_requests').column('expires_at').execute();
  await db.schema.createIndex('idempotent_requests_tenant_id').on('idempotent_requests').column('tenant_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('idempotent_requests').execute();
}
