import type { Transaction as DbTransaction, Kysely } from 'kysely';
import type { Principal } from '../auth/service.ts';
import { isUuid, newId } from '../db/ids.ts';
import type { Database } from '../db/tables.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import * as tokenStore from '../tokens/store.ts';
import * as store from './store.ts';
import type { TransactionStatus } from './tables.ts';

/** A transaction as clients see it (the seeds' transaction object plus its status). */
export interface Transaction {
  id: string;
  createdAt: Date;
  createdBy: string;
  expiresAt: Date;
  status: TransactionStatus;
}

export interface SweepResult {
  /** Open transactions past their expiry that were rolled back and marked EXPIRED. */
  expiredTransactions: number;
  /** Expired tokens deleted (they were already invisible). */
  purgedTokens: number;
}

export type TransactionService = ReturnType<typeof createTransactionService>;

const SWEEP_BATCH = 100;
const PURGE_BATCH = 1_000;

function toTransaction(row: store.CurrentTransactionRow): Transaction {
  return {
    id: row.id,
    createdAt: row.created_at,
    createdBy: row.created_by,
    expiresAt: row.expires_at,
    status: row.current_status,
  };
}

function notFound(): NotFoundError {
  // The same for an unknown id, a malformed one and another tenant's: nothing tells them apart.
  return new NotFoundError('Transaction not found.');
}

function notOpen(status: TransactionStatus, action: string): ConflictError {
  return new ConflictError(`The transaction is ${status}; only an OPEN transaction can ${action}.`, {
    errors: { transactionId: [`is ${status}`] },
  });
}

/**
 * Enlists a write in an open transaction of the tenant, inside the caller's database transaction: takes a share lock
 * on the transaction row, so the write and a commit or rollback of that transaction happen one after the other,
 * never interleaved. Unknown (or another tenant's) -> NOT_FOUND; committed, rolled back or expired -> CONFLICT.
 */
export async function enlistInTransaction(
  trx: DbTransaction<Database>,
  tenantId: string,
  transactionId: string,
): Promise<string> {
  if (!isUuid(transactionId)) throw notFound();
  const row = await store.lockTransaction(trx, tenantId, transactionId.toLowerCase(), 'share');
  if (!row) throw notFound();
  if (row.current_status !== 'OPEN') throw notOpen(row.current_status, 'take writes');
  return row.id;
}

/**
 * Refuses `transactionId` as enlisting a write in it would (NOT_FOUND, or CONFLICT when no longer open), without
 * locking anything: `react` checks it before running the formula, whose tokenized output is written there afterwards,
 * so a bad id never costs a run (which may have charged a card) whose result is then lost.
 */
async function requireOpenTransaction(db: Kysely<Database>, tenantId: string, transactionId: string): Promise<void> {
  if (!isUuid(transactionId)) throw notFound();
  const row = await store.findTransaction(db, tenantId, transactionId.toLowerCase());
  if (!row) throw notFound();
  if (row.current_status !== 'OPEN') throw notOpen(row.current_status, 'take writes');
}

/**
 * The transaction id a read may see pending writes of: reads never fail over a transaction id, they only see
 * fewer tokens (committed ones) when it is malformed, unknown, another tenant's or no longer open.
 */
export function readableTransactionId(transactionId: string | null | undefined): string | null {
  return transactionId && isUuid(transactionId) ? transactionId.toLowerCase() : null;
}

export function createTransactionService(deps: {
  db: Kysely<Database>;
  ttlMs: number;
  /** Called after a commit deleted or updated tokens, so this instance's token cache forgets them at once. */
  onTokensChanged?: (tenantId: string) => void;
}) {
  const { db } = deps;

  async function finish(principal: Principal, id: string, outcome: 'COMMITTED' | 'ROLLED_BACK'): Promise<Transaction> {
    if (!isUuid(id)) throw notFound();
    const finished = await db.transaction().execute(async (trx) => {
      // FOR UPDATE: a commit and a rollback racing on one transaction serialize here; the loser sees the winner's status.
      const row = await store.lockTransaction(trx, principal.tenantId, id, 'update');
      if (!row) throw notFound();
      // Its creator decides its outcome: another key given its id (a browser's PUBLIC key, creating tokens in it)
      // must not commit or discard the creator's pending writes, which may touch tokens that key cannot.
      if (row.created_by !== principal.applicationId) {
        throw new ForbiddenError(
          `Only the application that created a transaction may ${outcome === 'COMMITTED' ? 'commit' : 'roll back'} it.`,
        );
      }
      if (row.current_status !== 'OPEN')
        throw notOpen(row.current_status, outcome === 'COMMITTED' ? 'be committed' : 'be rolled back');
      if (outcome === 'COMMITTED') await tokenStore.commitTransactionTokens(trx, principal.tenantId, id);
      else await tokenStore.rollbackTransactionTokens(trx, principal.tenantId, id);
      return toTransaction(await store.finishTransaction(trx, principal.tenantId, id, outcome));
    });
    if (outcome === 'COMMITTED') deps.onTokensChanged?.(principal.tenantId);
    return finished;
  }

  return {
    /** Before a `react` whose tokenized output goes into `transactionId`: NOT_FOUND or CONFLICT unless it is open. */
    requireOpen(principal: Principal, transactionId: string): Promise<void> {
      return requireOpenTransaction(db, principal.tenantId, transactionId);
    },

    /** Opens a transaction of the caller's tenant; it expires `ttlMs` after creation (1 h by default). */
    async createTransaction(principal: Principal): Promise<Transaction> {
      const row = await store.insertTransaction(db, principal.tenantId, {
        id: newId(),
        created_by: principal.applicationId,
        ttlMs: deps.ttlMs,
      });
      return toTransaction(row);
    },

    async transaction(principal: Principal, id: string): Promise<Transaction | undefined> {
      if (!isUuid(id)) return undefined;
      const row = await store.findTransaction(db, principal.tenantId, id);
      return row ? toTransaction(row) : undefined;
    },

    /** Atomically applies the transaction's writes: its tokens become visible, its deletes happen. */
    commitTransaction(principal: Principal, id: string): Promise<Transaction> {
      return finish(principal, id, 'COMMITTED');
    },

    /** Atomically discards the transaction's writes: its tokens are deleted, the tokens it held are released. */
    rollbackTransaction(principal: Principal, id: string): Promise<Transaction> {
      return finish(principal, id, 'ROLLED_BACK');
    },

    /**
     * Rolls back every open transaction expired by the database's clock (marking it EXPIRED) and purges expired
     * tokens, across tenants, in small batches. Safe to run on every instance at once: transactions are claimed with
     * SKIP LOCKED.
     */
    async sweepExpired(): Promise<SweepResult> {
      let expiredTransactions = 0;
      for (;;) {
        const swept = await db.transaction().execute(async (trx) => {
          const rows = await store.lockExpiredOpenTransactions(trx, SWEEP_BATCH);
          for (const row of rows) {
            await tokenStore.rollbackTransactionTokens(trx, row.tenant_id, row.id);
            await store.finishTransaction(trx, row.tenant_id, row.id, 'EXPIRED');
          }
          return rows.length;
        });
        expiredTransactions += swept;
        if (swept < SWEEP_BATCH) break;
      }
      let purgedTokens = 0;
      for (;;) {
        const purged = await tokenStore.purgeExpiredTokens(db, PURGE_BATCH);
        purgedTokens += purged;
        if (purged < PURGE_BATCH) break;
      }
      return { expiredTransactions, purgedTokens };
    },
  };
}
