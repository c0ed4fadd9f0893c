import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('transactions')
    .addColumn('id', 'uuid', (col) => col.primaryKey())
    .addColumn('tenant_id', 'uuid', (col) => col.notNull().references('tenants.id').onDelete('cascade'))
    // No foreign key: a transaction outlives the application that opened it, as audit columns do elsewhere.
    .addColumn('created_by', 'uuid', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('status', 'text', (col) =>
      col.notNull().defaultTo('OPEN').check(sql`status in ('OPEN', 'COMMITTED', 'ROLLED_BACK', 'EXPIRED')`),
    )
    .addColumn('finished_at', 'timestamptz')
    .execute();
  // The sweeper's scan: open transactions by expiry, a small partial index.
  await db.schema
    .createIndex('transactions_open_expires_at')
    .on('transactions')
    .column('expires_at')
    .where(sql.ref('status'), '=', 'OPEN')
    .execute();

  await db.schema
    .createTable('tokens')
    .addColumn('id', 'uuid', (col) => col.primaryKey())
    .addColumn('tenant_id', 'uuid', (col) => col.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('type', 'text', (col) => col.notNull().check(sql`type in ('TOKEN', 'CARD', 'BANK')`))
    // AES-256-GCM sealed JSON of the data, bound to (tenant, token id); see src/tokens/vault.ts.
    .addColumn('data', 'bytea', (col) => col.notNull())
    .addColumn('mask', 'jsonb')
    .addColumn('fingerprint', 'text', (col) => col.notNull())
    .addColumn('metadata', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('containers', sql`text[]`, (col) => col.notNull())
    .addColumn('created_by', 'uuid', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz')
    // Pending writes of an open transaction; cleared on commit. Cascade: a rolled-back transaction's tokens go too.
    .addColumn('transaction_id', 'uuid', (col) => col.references('transactions.id').onDelete('cascade'))
    .addColumn('deleting_transaction_id', 'uuid', (col) => col.references('transactions.id').onDelete('set null'))
    .execute();
  // Lookups by id go through the primary key; this one serves fingerprint searches and the tenant's cascade delete.
  await db.schema
    .createIndex('tokens_tenant_id_fingerprint')
    .on('tokens')
    .columns(['tenant_id', 'fingerprint'])
    .execute();
  // Commit and rollback find a transaction's tokens; the sweeper finds expired ones. All partial, so small.
  await db.schema
    .createIndex('tokens_transaction_id')
    .on('tokens')
    .column('transaction_id')
    .where(sql.ref('transaction_id'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('tokens_deleting_transaction_id')
    .on('tokens')
    .column('deleting_transaction_id')
    .where(sql.ref('deleting_transaction_id'), 'is not', null)
    .execute();
  await db.schema
    .createIndex('tokens_expires_at')
    .on('tokens')
    .column('expires_at')
    .where(sql.ref('expires_at'), 'is not', null)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('tokens').execute();
  await db.schema.dropTable('transactions').execute();
}
