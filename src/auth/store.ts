import type { Kysely, Transaction, Updateable } from 'kysely';
import type { PageRequest } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import type { ApplicationRow, ApplicationsTable, ApplicationType, TenantRow } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

export async function insertTenant(db: Executor, tenant: { id: string; name: string }): Promise<TenantRow> {
  return db.insertInto('tenants').values(tenant).returningAll().executeTakeFirstOrThrow();
}

export async function findTenant(db: Executor, tenantId: string): Promise<TenantRow | undefined> {
  return db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirst();
}

export async function countTenants(db: Executor): Promise<number> {
  const row = await db
    .selectFrom('tenants')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function listTenants(db: Executor, page: PageRequest): Promise<TenantRow[]> {
  let query = db.selectFrom('tenants').selectAll();
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.size + 1)
    .execute();
}

/**
 * Deletes a tenant and, through the foreign keys' ON DELETE CASCADE, everything it owns. Its applications go first,
 * returned, so that their keys can be dropped from the key cache.
 */
export async function deleteTenant(
  db: Transaction<Database>,
  id: string,
): Promise<{ tenant: TenantRow | undefined; applications: ApplicationRow[] }> {
  const applications = await db.deleteFrom('applications').where('tenant_id', '=', id).returningAll().execute();
  const tenant = await db.deleteFrom('tenants').where('id', '=', id).returningAll().executeTakeFirst();
  return { tenant, applications };
}

export async function insertApplication(
  db: Executor,
  application: {
    id: string;
    tenant_id: string;
    name: string;
    type: ApplicationType;
    permissions: string[];
    token_containers: string[] | null;
    key_hash: string;
    key_prefix: string;
    created_by: string | null;
  },
): Promise<ApplicationRow> {
  return db.insertInto('applications').values(application).returningAll().executeTakeFirstOrThrow();
}

/**
 * The one lookup that is not tenant-scoped, by design: it is how the tenant of a request is found. It probes the
 * unique index on key_hash.
 */
export async function findApplicationByKeyHash(db: Executor, keyHash: string): Promise<ApplicationRow | undefined> {
  return db.selectFrom('applications').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
}

/** `forUpdate` locks the row for the rest of the caller's transaction (a change reads, checks, then writes). */
export async function findApplication(
  db: Executor,
  tenantId: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<ApplicationRow | undefined> {
  const query = db.selectFrom('applications').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id);
  return (options.forUpdate ? query.forUpdate() : query).executeTakeFirst();
}

export async function updateApplication(
  db: Executor,
  tenantId: string,
  id: string,
  changes: Updateable<ApplicationsTable>,
): Promise<ApplicationRow> {
  return db
    .updateTable('applications')
    .set(changes)
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findApplicationsByIds(
  db: Executor,
  tenantId: string,
  ids: readonly string[],
): Promise<ApplicationRow[]> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('applications')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', 'in', [...ids])
    .execute();
}

export async function listApplications(db: Executor, tenantId: string, page: PageRequest): Promise<ApplicationRow[]> {
  let query = db.selectFrom('applications').selectAll().where('tenant_id', '=', tenantId);
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.size + 1)
    .execute();
}

export async function countApplications(db: Executor, tenantId: string): Promise<number> {
  const row = await db
    .selectFrom('applications')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('tenant_id', '=', tenantId)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function deleteApplication(
  db: Executor,
  tenantId: string,
  id: string,
): Promise<ApplicationRow | undefined> {
  return db
    .deleteFrom('applications')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}
