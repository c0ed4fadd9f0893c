import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/tables.ts';
import { createRequestSealing } from '../../src/invocations/request-sealing.ts';
import type { ReactorRequestRow } from '../../src/invocations/tables.ts';
import { createVault } from '../../src/tokens/vault.ts';
import { TEST_ENCRYPTION_KEY } from './gateway.ts';

/** Opens async requests sealed by a gateway started with TEST_ENCRYPTION_KEY, as the gateway does. */
export const testSealing = createRequestSealing(createVault(Buffer.from(TEST_ENCRYPTION_KEY, 'hex')), true);

/** An async request as stored, opened (args, raw, tokens, error in the clear); undefined when there is none. */
export async function storedRequest(db: Kysely<Database>, id: string): Promise<ReactorRequestRow | undefined> {
  const row = await db.selectFrom('reactor_requests').selectAll().where('id', '=', id).executeTakeFirst();
  return row && testSealing.open(row);
}
