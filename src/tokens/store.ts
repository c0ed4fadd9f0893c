import { type ExpressionBuilder, type Insertable, type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../db/tables.ts';
import type { TokenRow, TokensTable } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** A token row to insert; `mask` and `metadata` as JSON text. */
export type NewTokenRow = Omit<Insertable<TokensTable>, 'tenant_id'>;

/**
 * Which tokens a reader sees: live ones (no expiry, or expiry still ahead by the database clock), committed or
 * created in `transactionId` while it is open, minus those `transactionId` itself holds for deletion while it is open
 * (a transaction reads its own writes; an expired one the sweeper has not reached yet holds nothing, as for
 * deleteToken). Without a transaction: committed tokens only, including those an open transaction is about to
 * delete, since that delete has not happened for anyone else yet.
 */
function visibleTo(tenantId: string, transactionId: string | null) {
  return (eb: ExpressionBuilder<Database, 'tokens'>) => {
    const live = eb.or([eb('tokens.expires_at', 'is', null), eb('tokens.expires_at', '>', sql<Date>`now()`)]);
    const ofTenant = eb('tokens.tenant_id', '=', tenantId);
    if (transactionId === null) return eb.and([ofTenant, live, eb('tokens.transaction_id', 'is', null)]);
    const openTransaction = eb.exists(
      eb
        .selectFrom('transactions')
        .select(sql`1`.as('one'))
        .where('transactions.id', '=', transactionId)
        .where('transactions.tenant_id', '=', tenantId)
        .where('transactions.status', '=', 'OPEN')
        .where('transactions.expires_at', '>', sql<Date>`now()`),
    );
    return eb.and([
      ofTenant,
      live,
      eb.or([
        eb('tokens.transaction_id', 'is', null),
        eb.and([eb('tokens.transaction_id', '=', transactionId), openTransaction]),
      ]),
      eb.or([
        eb('tokens.deleting_transaction_id', 'is', null),
        eb('tokens.deleting_transaction_id', '!=', transactionId),
        eb.not(openTransaction),
      ]),
    ]);
  };
}

export async function insertTokens(db: Executor, tenantId: string, tokens: NewTokenRow[]): Promise<TokenRow[]> {
  if (tokens.length === 0) return [];
  const rows = await db
    .insertInto('tokens')
    .values(tokens.map((token) => ({ ...token, tenant_id: tenantId })))
    .returningAll()
    .execute();
  // RETURNING does not promise the VALUES order; callers map results back to their inputs.
  const byId = new Map(rows.map((row) => [row.id, row]));
  return tokens.map((token) => byId.get(token.id) as TokenRow);
}

export async function findVisibleToken(
  db: Executor,
  tenantId: string,
  id: string,
  transactionId: string | null,
): Promise<TokenRow | undefined> {
  return db
    .selectFrom('tokens')
    .selectAll()
    .where('tokens.id', '=', id)
    .where(visibleTo(tenantId, transactionId))
    .executeTakeFirst();
}

/** Every visible token among `ids`, in one query; absent ids are simply missing from the result. */
export async function findVisibleTokens(
  db: Executor,
  tenantId: string,
  ids: readonly string[],
  transactionId: string | null,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('tokens')
    .selectAll()
    .where('tokens.id', 'in', [...ids])
    .where(visibleTo(tenantId, transactionId))
    .execute();
}

/** A visible token, locked against concurrent deletes and enlistments until the database transaction ends. */
export async function lockVisibleToken(
  db: Transaction<Database>,
  tenantId: string,
  id: string,
  transactionId: string | null,
): Promise<TokenRow | undefined> {
  return db
    .selectFrom('tokens')
    .selectAll()
    .where('tokens.id', '=', id)
    .where(visibleTo(tenantId, transactionId))
    .forUpdate('tokens')
    .executeTakeFirst();
}

export async function deleteToken(db: Executor, tenantId: string, id: string): Promise<void> {
  await db.deleteFrom('tokens').where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

export async function holdForDeletion(
  db: Executor,
  tenantId: string,
  id: string,
  transactionId: string,
): Promise<void> {
  await db
    .updateTable('tokens')
    .set({ deleting_transaction_id: transactionId })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .execute();
}

/** Applies a transaction's writes: its deletes happen, its created tokens become visible to everyone. */
export async function commitTransactionTokens(db: Executor, tenantId: string, transactionId: string): Promise<void> {
  await db
    .deleteFrom('tokens')
    .where('tenant_id', '=', tenantId)
    .where('deleting_transaction_id', '=', transactionId)
    .execute();
  await db
    .updateTable('tokens')
    .set({ transaction_id: null })
    .where('tenant_id', '=', tenantId)
    .where('transaction_id', '=', transactionId)
    .execute();
}

/** Undoes a transaction's writes: its created tokens are deleted, the tokens it held for deletion are released. */
export async function rollbackTransactionTokens(db: Executor, tenantId: string, transactionId: string): Promise<void> {
  await db.deleteFrom('tokens').where('tenant_id', '=', tenantId).where('transaction_id', '=', transactionId).execute();
  await db
    .updateTable('tokens')
    .set({ deleting_transaction_id: null })
    .where('tenant_id', '=', tenantId)
    .where('deleting_transaction_id', '=', transactionId)
    .execute();
}

/**
 * Deletes tokens expired at `now`, across tenants by design (the sweeper; the documented exception to "no query
 * without the tenant"), at most `limit` per call so one sweep never holds a long lock. Returns how many went.
 * Expired tokens were already invisible to every read; this only reclaims the space.
 */
export async function purgeExpiredTokens(db: Executor, now: Date, limit: number): Promise<number> {
  const rows = await db
    .deleteFrom('tokens')
    .where('id', 'in', (eb) => eb.selectFrom('tokens').select('id').where('expires_at', '<=', now).limit(limit))
    .returning('id')
    .execute();
  return rows.length;
}
