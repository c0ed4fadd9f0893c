import type { ColumnType, Generated, Selectable } from 'kysely';
import type { TokenType } from './token-data.ts';

export interface TokensTable {
  id: string;
  tenant_id: string;
  type: TokenType;
  /** vault.encrypt(tenant, id, JSON of the data): never the plaintext. */
  data: Buffer;
  /** The part of the data that may be shown without `token:read` (card: bin, last4...); null for TOKEN. */
  mask: ColumnType<unknown, string | null, string | null>;
  fingerprint: string;
  metadata: ColumnType<Record<string, unknown>, string, string>;
  containers: ColumnType<string[], string[], string[]>;
  created_by: string;
  created_at: Generated<Date>;
  expires_at: Date | null;
  /** Set while the token was created in a transaction that is still open: invisible outside it until commit. */
  transaction_id: string | null;
  /** Set while an open transaction holds the token for deletion: deleted on commit, released on rollback. */
  deleting_transaction_id: string | null;
  /** The application that last updated the token, and when (migration 0011); null until its first update. */
  modified_by: ColumnType<string | null, string | null | undefined, string | null>;
  modified_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/**
 * The version of a committed token an open transaction's `updateToken` wrote (migration 0011): the token's own content
 * columns, and who wrote it when (always set here).
 */
export interface TokenUpdatesTable
  extends Pick<TokensTable, 'tenant_id' | 'data' | 'mask' | 'fingerprint' | 'metadata' | 'containers' | 'expires_at'> {
  token_id: string;
  transaction_id: string;
  modified_by: string;
  modified_at: Date;
}

/** The master key's check value (migration 0014, src/tokens/key-check.ts): one row, id 1. */
export interface EncryptionKeyCheckTable {
  id: Generated<number>;
  check_value: string;
  created_at: Generated<Date>;
}

export interface TokenTables {
  tokens: TokensTable;
  token_updates: TokenUpdatesTable;
  encryption_key_check: EncryptionKeyCheckTable;
}

export type TokenRow = Selectable<TokensTable>;
