import type { Kysely } from 'kysely';
import type { Config } from '../config.ts';
import { openGatewayDatabase } from '../db/command-database.ts';
import { isUuid } from '../db/ids.ts';
import type { Database } from '../db/tables.ts';
import { NotFoundError } from '../errors.ts';
import { insertRecoveryApplication } from './keyed-application.ts';

/**
 * `npm run create-management-key`: prints a new management key for the tenant TENANT_ID names, or for the only
 * tenant there is. On the embedded database the gateway must be stopped first (it admits one process).
 */
export async function runCreateManagementKey(config: Config, tenantId: string | undefined): Promise<string> {
  // Nothing is created on the way: no embedded database, no tables in a database that never held a gateway's.
  const database = await openGatewayDatabase(
    config,
    'reactor-gateway create-management-key',
    'start the gateway once to create it',
  );
  try {
    const id = tenantId?.trim() || (await onlyTenant(database.db));
    if (!isUuid(id)) throw new Error(`TENANT_ID "${id}" is not a tenant id (a UUID).`);
    const { application, key } = await insertRecoveryApplication(database.db, id).catch((error: unknown) => {
      if (error instanceof NotFoundError) throw new Error(`There is no tenant ${id}.`);
      throw error;
    });
    return [
      `Tenant ${id} has a new MANAGEMENT application, "${application.name}" (${application.id}),`,
      'holding every management permission. Its API key, shown only now (only its hash is stored):',
      '',
      `  ${key}`,
      '',
      'Delete or update this application once the tenant has the keys it needs again.',
    ].join('\n');
  } finally {
    await database.close();
  }
}

/** The id of the only tenant, or an error listing them (up to 20) and asking for TENANT_ID. */
async function onlyTenant(db: Kysely<Database>): Promise<string> {
  const tenants = await db.selectFrom('tenants').select(['id', 'name']).orderBy('id').limit(21).execute();
  const [only] = tenants;
  if (tenants.length === 1 && only) return only.id;
  if (tenants.length === 0) throw new Error('This database has no tenant: start the gateway to create one.');
  const listed = tenants.slice(0, 20).map((tenant) => `  ${tenant.id}  ${tenant.name}`);
  if (tenants.length > 20) listed.push('  ...');
  throw new Error(`There are several tenants; set TENANT_ID to one of them:\n${listed.join('\n')}`);
}
