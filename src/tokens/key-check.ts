import { createHmac } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.ts';
import { TokenDecryptionError } from './sealing.ts';
import type { Vault } from './vault.ts';

/**
 * Refuses to start with another master key than the one this database's tokens were sealed with. Without this a
 * mistyped or rotated ENCRYPTION_KEY (or one instance configured differently from the rest) started normally: every
 * old token failed to decrypt at its first use, and new tokens were sealed under a key the other instances could not
 * open, so a database ended up holding tokens under two keys.
 *
 * The database keeps a check value of the key: an HMAC of a fixed text under it, which tells keys apart without
 * revealing anything about either. A database from before the check (migration 0014) gets one from the first start
 * whose key opens an existing token; one without tokens takes the first key it meets. Two instances that start
 * together with different keys both read the one value the first of them stored, so the second refuses.
 */
export async function verifyMasterKey(db: Kysely<Database>, masterKey: Buffer, vault: Vault): Promise<void> {
  const mine = keyCheckValue(masterKey);
  const stored = await storedCheckValue(db);
  if (stored === undefined) {
    if (!(await opensASealedToken(db, vault))) throw new MasterKeyMismatchError();
    await db
      .insertInto('encryption_key_check')
      .values({ check_value: mine })
      .onConflict((conflict) => conflict.column('id').doNothing())
      .execute();
  }
  if (((await storedCheckValue(db)) ?? mine) !== mine) throw new MasterKeyMismatchError();
}

export class MasterKeyMismatchError extends Error {
  constructor() {
    super(
      "The encryption key is not the one this database's tokens are encrypted with, so the gateway did not start: " +
        'it could not read them, and new tokens would be encrypted under another key than the old ones. Start it ' +
        'with the key used before (ENCRYPTION_KEY, or encryption.key in DATA_DIR in embedded mode); every instance ' +
        'on one database needs the same key.',
    );
    this.name = 'MasterKeyMismatchError';
  }
}

export function keyCheckValue(masterKey: Buffer): string {
  return createHmac('sha256', masterKey).update('reactor-gateway/encryption-key-check/v1').digest('base64url');
}

async function storedCheckValue(db: Kysely<Database>): Promise<string | undefined> {
  const row = await db.selectFrom('encryption_key_check').select('check_value').executeTakeFirst();
  return row?.check_value;
}

/**
 * Whether the key opens one of a few tokens of the database, or there is none to open (a few, so one damaged row
 * does not stop a start). Across tenants by design, like the sweeper: any tenant's rows are the sample, and nothing
 * of them leaves this function.
 */
async function opensASealedToken(db: Kysely<Database>, vault: Vault): Promise<boolean> {
  const sample = await db.selectFrom('tokens').select(['tenant_id', 'id', 'data']).limit(3).execute();
  if (sample.length === 0) return true;
  return sample.some((token) => {
    try {
      vault.decrypt(token.tenant_id, token.id, token.data);
      return true;
    } catch (error) {
      if (error instanceof TokenDecryptionError) return false;
      throw error;
    }
  });
}
