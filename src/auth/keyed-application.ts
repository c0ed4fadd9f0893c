import type { Kysely } from 'kysely';
import { newId } from '../db/ids.ts';
import type { Database } from '../db/tables.ts';
import { NotFoundError } from '../errors.ts';
import { generateApiKey, hashApiKey, keyPrefix } from './keys.ts';
import { DEFAULT_PERMISSIONS, type Permission } from './permissions.ts';
import * as store from './store.ts';
import type { ApplicationRow, ApplicationType } from './tables.ts';

type Executor = Parameters<typeof store.insertApplication>[0];

/** Inserts an application with a new key (or the given one); the key is returned this once, only its hash kept. */
export async function insertKeyedApplication(
  executor: Executor,
  input: {
    tenantId: string;
    name: string;
    type: ApplicationType;
    permissions: readonly Permission[];
    tokenContainers?: readonly string[] | null;
    createdBy: string | null;
    key?: string;
  },
): Promise<{ application: ApplicationRow; key: string }> {
  const key = input.key ?? generateApiKey();
  const application = await store.insertApplication(executor, {
    id: newId(),
    tenant_id: input.tenantId,
    name: input.name,
    type: input.type,
    permissions: [...input.permissions],
    token_containers: input.tokenContainers ? [...input.tokenContainers] : null,
    key_hash: hashApiKey(key),
    key_prefix: keyPrefix(key),
    created_by: input.createdBy,
  });
  return { application, key };
}

/**
 * The operator's way back into a tenant that lost its management keys (deleted, stripped of their permissions, or
 * simply lost): a new MANAGEMENT application holding every management permission. Without it, such a tenant's
 * tokens could be reached by no one. NOT_FOUND for an unknown tenant; the tenant row is locked meanwhile, so a
 * concurrent deleteTenant cannot leave the insert without its tenant.
 */
export function insertRecoveryApplication(
  db: Kysely<Database>,
  tenantId: string,
): Promise<{ application: ApplicationRow; key: string }> {
  return db.transaction().execute(async (trx) => {
    const tenant = await trx
      .selectFrom('tenants')
      .select('id')
      .where('id', '=', tenantId)
      .forShare()
      .executeTakeFirst();
    if (!tenant) throw new NotFoundError('Tenant not found.');
    return insertKeyedApplication(trx, {
      tenantId,
      name: `Recovery key ${new Date().toISOString().slice(0, 10)}`,
      type: 'MANAGEMENT',
      permissions: DEFAULT_PERMISSIONS.MANAGEMENT,
      createdBy: null,
    });
  });
}
