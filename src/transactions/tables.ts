import type { Generated, Selectable } from 'kysely';

/**
 * Stored states. `EXPIRED` is also what an `OPEN` row past its `expires_at` reads as before the sweeper gets to it,
 * so a client never sees an expired transaction as open.
 */
export type TransactionStatus = 'OPEN' | 'COMMITTED' | 'ROLLED_BACK' | 'EXPIRED';

export interface TransactionsTable {
  id: string;
  tenant_id: string;
  /** The application that created it. */
  created_by: string;
  created_at: Generated<Date>;
  expires_at: Date;
  status: Generated<TransactionStatus>;
  finished_at: Date | null;
}

export interface TransactionTables {
  transactions: TransactionsTable;
}

export type TransactionRow = Selectable<TransactionsTable>;
