import {
  type Expression,
  type ExpressionBuilder,
  type Insertable,
  type Kysely,
  type SelectQueryBuilder,
  sql,
  type Transaction,
} from 'kysely';
import type { PageRequest } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import type { TokenRow, TokensTable } from './tables.ts';
import type { ValidTokenFilter } from './token-filter.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** A token row to insert; `mask` and `metadata` as JSON text. */
export type NewTokenRow = Omit<Insertable<TokensTable>, 'tenant_id'>;

/** Whether `transactionId` is an open transaction of the tenant, by the database clock. */
function isOpen(eb: ExpressionBuilder<Database, any>, tenantId: string, transactionId: string) {
  return eb.exists(
    eb
      .selectFrom('transactions')
      .select(sql`1`.as('one'))
      .where('transactions.id', '=', transactionId)
      .where('transactions.tenant_id', '=', tenantId)
      .where('transactions.status', '=', 'OPEN')
      .where('transactions.expires_at', '>', sql<Date>`now()`),
  );
}

/**
 * Which tokens a reader sees: live ones (no expiry, or expiry still ahead by the database clock), committed or
 * created in `transactionId` while it is open, minus those `transactionId` itself holds for deletion while it is open
 * (a transaction reads its own writes; an expired one the sweeper has not reached yet holds nothing, as for
 * deleteToken). Without a transaction: committed tokens only, including those an open transaction is about to
 * delete or update, since that has not happened for anyone else yet. `expiresAt` is the expiry the reader sees (a
 * pending update's, inside its transaction).
 */
function visibleTo(tenantId: string, transactionId: string | null, expiresAt: Expression<Date | null>) {
  return (eb: ExpressionBuilder<Database, 'tokens'>) => {
    const live = eb.or([eb(expiresAt, 'is', null), eb(expiresAt, '>', sql<Date>`now()`)]);
    const ofTenant = eb('tokens.tenant_id', '=', tenantId);
    if (transactionId === null) return eb.and([ofTenant, live, eb('tokens.transaction_id', 'is', null)]);
    const openTransaction = isOpen(eb, tenantId, transactionId);
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

/** Columns an update replaces; inside the updating transaction they are read from its pending version. */
const UPDATABLE = [
  'data',
  'mask',
  'fingerprint',
  'metadata',
  'containers',
  'expires_at',
  'modified_by',
  'modified_at',
] as const;

/**
 * The visible tokens as the reader sees them. Inside an open transaction a token it updated reads as its pending
 * version (token_updates, migration 0011); outside one, the plain rows (the token cache's query, kept as simple).
 */
function visibleTokens(db: Executor, tenantId: string, transactionId: string | null) {
  if (transactionId === null) {
    return db
      .selectFrom('tokens')
      .selectAll('tokens')
      .where(visibleTo(tenantId, null, sql.ref<Date | null>('tokens.expires_at')));
  }
  const pending = sql.ref('pending.token_id');
  const effective = (column: (typeof UPDATABLE)[number]) =>
    sql<any>`case when ${pending} is not null then ${sql.ref(`pending.${column}`)} else ${sql.ref(`tokens.${column}`)} end`;
  return db
    .selectFrom('tokens')
    .leftJoin('token_updates as pending', (join) =>
      join
        .onRef('pending.token_id', '=', 'tokens.id')
        .on('pending.transaction_id', '=', transactionId)
        .on((eb) => isOpen(eb, tenantId, transactionId)),
    )
    .select([
      'tokens.id',
      'tokens.tenant_id',
      'tokens.type',
      'tokens.created_by',
      'tokens.created_at',
      'tokens.transaction_id',
      'tokens.deleting_transaction_id',
      ...UPDATABLE.map((column) => effective(column).as(column)),
    ])
    .where(visibleTo(tenantId, transactionId, effective('expires_at')) as any)
    .$castTo<TokenRow>();
}

/** One of the token's containers is one of `paths` or lies below one (`/pci/` holds `/pci/high/`). */
function inContainers(paths: readonly string[]) {
  return sql<boolean>`exists (select 1 from unnest(${sql.ref('token.containers')}) as container(path),
    unnest(${[...paths]}::text[]) as prefix(path) where starts_with(container.path, prefix.path))`;
}

/**
 * The visible tokens (as `visibleTokens` reads them, pending versions included) that match `filter`. The filter
 * applies to what the reader sees, so inside a transaction a pending update's metadata or containers are matched.
 */
function filteredTokens(db: Executor, tenantId: string, filter: ValidTokenFilter, transactionId: string | null) {
  // One shape for both branches of visibleTokens: the columns of a token row.
  const visible = visibleTokens(db, tenantId, transactionId) as SelectQueryBuilder<Database, 'tokens', TokenRow>;
  let query = db.selectFrom(visible.as('token'));
  if (filter.ids !== null) {
    // `ids: []` asks for none of them, not for every token.
    query = filter.ids.length > 0 ? query.where('token.id', 'in', [...filter.ids]) : query.where(sql<boolean>`false`);
  }
  if (filter.type !== null) query = query.where('token.type', '=', filter.type);
  if (filter.fingerprint !== null) query = query.where('token.fingerprint', '=', filter.fingerprint);
  if (filter.metadata !== null) {
    query = query.where(sql<boolean>`${sql.ref('token.metadata')} @> ${JSON.stringify(filter.metadata)}::jsonb`);
  }
  if (filter.container !== null) query = query.where(inContainers([filter.container]));
  if (filter.reach !== null) query = query.where(inContainers(filter.reach));
  return query;
}

/** A page of the visible tokens matching `filter`, oldest first (ids are UUIDv7); `size + 1` rows (see toPage). */
export async function listVisibleTokens(
  db: Executor,
  tenantId: string,
  filter: ValidTokenFilter,
  transactionId: string | null,
  page: PageRequest,
): Promise<TokenRow[]> {
  let query = filteredTokens(db, tenantId, filter, transactionId).selectAll('token');
  if (page.afterId !== null) query = query.where('token.id', '>', page.afterId);
  return query
    .orderBy('token.id')
    .limit(page.size + 1)
    .execute();
}

export async function countVisibleTokens(
  db: Executor,
  tenantId: string,
  filter: ValidTokenFilter,
  transactionId: string | null,
): Promise<number> {
  const row = await filteredTokens(db, tenantId, filter, transactionId)
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(row.count);
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
  return visibleTokens(db, tenantId, transactionId).where('tokens.id', '=', id).executeTakeFirst();
}

/** Every visible token among `ids`, in one query; absent ids are simply missing from the result. */
export async function findVisibleTokens(
  db: Executor,
  tenantId: string,
  ids: readonly string[],
  transactionId: string | null,
): Promise<TokenRow[]> {
  if (ids.length === 0) return [];
  return visibleTokens(db, tenantId, transactionId)
    .where('tokens.id', 'in', [...ids])
    .execute();
}

/** A visible token, locked against concurrent deletes and enlistments until the database transaction ends. */
export async function lockVisibleToken(
  db: Transaction<Database>,
  tenantId: string,
  id: string,
  transactionId: string | null,
): Promise<TokenRow | undefined> {
  return visibleTokens(db, tenantId, transactionId).where('tokens.id', '=', id).forUpdate('tokens').executeTakeFirst();
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

/** The columns a token's content fills, sealed and computed as at creation. */
export type TokenContent = Pick<
  NewTokenRow,
  'data' | 'mask' | 'fingerprint' | 'metadata' | 'containers' | 'expires_at'
>;

/** The columns an update writes: the new content, and who changed it when. */
export type TokenChanges = TokenContent & { modified_by: string; modified_at: Date };

/** Replaces a token's updatable columns at once (outside a transaction, or a token its own transaction created). */
export async function updateToken(db: Executor, tenantId: string, id: string, changes: TokenChanges): Promise<void> {
  await db.updateTable('tokens').set(changes).where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

/** The transaction that holds a pending update of the token, if any (open or not: the caller checks). */
export async function findPendingUpdate(db: Executor, tenantId: string, id: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('token_updates')
    .select('transaction_id')
    .where('tenant_id', '=', tenantId)
    .where('token_id', '=', id)
    .executeTakeFirst();
  return row?.transaction_id;
}

/** Holds the token's new version until `transactionId` commits; replaces a version held before (by it, or by a dead one). */
export async function holdUpdate(
  db: Executor,
  tenantId: string,
  id: string,
  transactionId: string,
  changes: TokenChanges,
): Promise<void> {
  const row = { token_id: id, tenant_id: tenantId, transaction_id: transactionId, ...changes };
  await db
    .insertInto('token_updates')
    .values(row)
    .onConflict((conflict) => conflict.column('token_id').doUpdateSet({ transaction_id: transactionId, ...changes }))
    .execute();
}

/** Applies a transaction's writes: its deletes happen, its updates land, its created tokens become visible to everyone. */
export async function commitTransactionTokens(db: Executor, tenantId: string, transactionId: string): Promise<void> {
  await db
    .deleteFrom('tokens')
    .where('tenant_id', '=', tenantId)
    .where('deleting_transaction_id', '=', transactionId)
    .execute();
  await db
    .updateTable('tokens')
    .from('token_updates')
    .set((eb) => ({
      data: eb.ref('token_updates.data'),
      // jsonb to jsonb: the column types differ only in what Kysely takes on insert (JSON text).
      mask: sql<string | null>`${eb.ref('token_updates.mask')}`,
      fingerprint: eb.ref('token_updates.fingerprint'),
      metadata: sql<string>`${eb.ref('token_updates.metadata')}`,
      containers: eb.ref('token_updates.containers'),
      expires_at: eb.ref('token_updates.expires_at'),
      modified_by: eb.ref('token_updates.modified_by'),
      modified_at: eb.ref('token_updates.modified_at'),
    }))
    .whereRef('token_updates.token_id', '=', 'tokens.id')
    .where('token_updates.tenant_id', '=', tenantId)
    .where('token_updates.transaction_id', '=', transactionId)
    .where('tokens.tenant_id', '=', tenantId)
    .execute();
  await db
    .deleteFrom('token_updates')
    .where('tenant_id', '=', tenantId)
    .where('transaction_id', '=', transactionId)
    .execute();
  await db
    .updateTable('tokens')
    .set({ transaction_id: null })
    .where('tenant_id', '=', tenantId)
    .where('transaction_id', '=', transactionId)
    .execute();
}

/**
 * Undoes a transaction's writes: its created tokens are deleted, its pending updates dropped, the tokens it held for
 * deletion released.
 */
export async function rollbackTransactionTokens(db: Executor, tenantId: string, transactionId: string): Promise<void> {
  await db.deleteFrom('tokens').where('tenant_id', '=', tenantId).where('transaction_id', '=', transactionId).execute();
  await db
    .deleteFrom('token_updates')
    .where('tenant_id', '=', tenantId)
    .where('transaction_id', '=', transactionId)
    .execute();
  await db
    .updateTable('tokens')
    .set({ deleting_transaction_id: null })
    .where('tenant_id', '=', tenantId)
    .where('deleting_transaction_id', '=', transactionId)
    .execute();
}

/**
 * Deletes tokens expired by the database's clock (the one reads judge expiry by), across tenants by design (the sweeper; the documented exception to "no query
 * without the tenant"), at most `limit` per call so one sweep never holds a long lock. Returns how many went.
 * Expired tokens were already invisible to every read; this only reclaims the space.
 */
export async function purgeExpiredTokens(db: Executor, limit: number): Promise<number> {
  const rows = await db
    .deleteFrom('tokens')
    .where('id', 'in', (eb) =>
      eb.selectFrom('tokens').select('id').where('expires_at', '<=', sql<Date>`now()`).limit(limit),
    )
    .returning('id')
    .execute();
  return rows.length;
}
