import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../db/tables.ts';
import type { TransactionRow, TransactionStatus } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** A transaction row with the status a client should see: an `OPEN` row past its expiry reads as `EXPIRED`. */
export type CurrentTransactionRow = TransactionRow & { current_status: TransactionStatus };

// Expiry is judged by the database clock, the one clock every gateway instance shares.
const currentStatus = sql<TransactionStatus>`case when status = 'OPEN' and expires_at <= now() then 'EXPIRED' else status end`;

export async function insertTransaction(
  db: Executor,
  tenantId: string,
  transaction: { id: string; created_by: string; ttlMs: number },
): Promise<CurrentTransactionRow> {
  return db
    .insertInto('transactions')
    .values({
      id: transaction.id,
      tenant_id: tenantId,
      created_by: transaction.created_by,
      // Same statement, same now(): expires_at is exactly created_at + ttl.
      expires_at: sql<Date>`now() + make_interval(secs => ${transaction.ttlMs}::double precision / 1000)`,
    })
    .returningAll()
    .returning(currentStatus.as('current_status'))
    .executeTakeFirstOrThrow();
}

export async function findTransaction(
  db: Executor,
  tenantId: string,
  id: string,
): Promise<CurrentTransactionRow | undefined> {
  return db
    .selectFrom('transactions')
    .selectAll()
    .select(currentStatus.as('current_status'))
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
}

/**
 * Reads and locks a transaction row inside a database transaction. `update` (commit, rollback) excludes every other
 * lock, so a commit and a rollback racing on one transaction run one after the other and the second sees the first's
 * outcome. `share` (enlisting a token write) lets writes of the same transaction run side by side but waits for, or
 * holds off, a commit or rollback.
 */
export async function lockTransaction(
  db: Transaction<Database>,
  tenantId: string,
  id: string,
  mode: 'update' | 'share',
): Promise<CurrentTransactionRow | undefined> {
  const query = db
    .selectFrom('transactions')
    .selectAll()
    .select(currentStatus.as('current_status'))
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id);
  return (mode === 'update' ? query.forUpdate() : query.forShare()).executeTakeFirst();
}

export async function finishTransaction(
  db: Executor,
  tenantId: string,
  id: string,
  status: Exclude<TransactionStatus, 'OPEN'>,
): Promise<CurrentTransactionRow> {
  return db
    .updateTable('transactions')
    .set({ status, finished_at: sql<Date>`now()` })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .returning(sql<TransactionStatus>`status`.as('current_status'))
    .executeTakeFirstOrThrow();
}

/**
 * The sweeper's scan, across tenants by design (the documented exception to "no query without the tenant"): open
 * transactions expired by the database's clock (the one `currentStatus` reads; a gateway's clock running ahead would
 * roll back transactions its clients still see as OPEN), locked and skipping rows another instance is already
 * sweeping or committing.
 */
export async function lockExpiredOpenTransactions(
  db: Transaction<Database>,
  limit: number,
): Promise<Pick<TransactionRow, 'id' | 'tenant_id'>[]> {
  return db
    .selectFrom('transactions')
    .select(['id', 'tenant_id'])
    .where('status', '=', 'OPEN')
    .where('expires_at', '<=', sql<Date>`now()`)
    .orderBy('expires_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
}
