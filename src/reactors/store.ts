import { type Kysely, sql, type Transaction } from 'kysely';
import { type PageRequest, wildcardPattern } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import type { ConfigurationOption, RequestParameter } from '../formulas/rules.ts';
import type { ConfigurationValue } from './configuration.ts';
import type { ReactorRow } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

export interface ReactorFilter {
  ids?: readonly string[] | null;
  name?: string | null;
}

export interface ReactorValues {
  name: string;
  configuration: Record<string, ConfigurationValue>;
  application_id: string | null;
}

export async function insertReactor(
  db: Executor,
  tenantId: string,
  reactor: ReactorValues & { id: string; formula_id: string; created_by: string },
): Promise<ReactorRow> {
  return db
    .insertInto('reactors')
    .values({ ...reactor, tenant_id: tenantId, configuration: JSON.stringify(reactor.configuration) })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findReactor(db: Executor, tenantId: string, id: string): Promise<ReactorRow | undefined> {
  return db
    .selectFrom('reactors')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
}

function filtered(db: Executor, tenantId: string, filter: ReactorFilter) {
  let query = db.selectFrom('reactors').where('tenant_id', '=', tenantId);
  // `ids: []` asks for none of them, not for every reactor.
  if (filter.ids)
    query = filter.ids.length > 0 ? query.where('id', 'in', [...filter.ids]) : query.where(sql<boolean>`false`);
  if (filter.name) query = query.where('name', 'ilike', wildcardPattern(filter.name, 'name'));
  return query;
}

export async function listReactors(
  db: Executor,
  tenantId: string,
  filter: ReactorFilter,
  page: PageRequest,
): Promise<ReactorRow[]> {
  let query = filtered(db, tenantId, filter).selectAll();
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.size + 1)
    .execute();
}

export async function countReactors(db: Executor, tenantId: string, filter: ReactorFilter): Promise<number> {
  const row = await filtered(db, tenantId, filter)
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/**
 * Replaces name, configuration and application. modified_at moves forward by at least 1 ms on every write, even
 * two writes within the same millisecond: (id, modified_at) is a cache key for the loaded reactor.
 */
export async function replaceReactor(
  db: Executor,
  tenantId: string,
  id: string,
  reactor: ReactorValues & { modified_by: string },
): Promise<ReactorRow | undefined> {
  return db
    .updateTable('reactors')
    .set({
      ...reactor,
      configuration: JSON.stringify(reactor.configuration),
      modified_at: sql<Date>`greatest(now(), coalesce(modified_at, created_at) + interval '1 millisecond')`,
    })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteReactor(db: Executor, tenantId: string, id: string): Promise<ReactorRow | undefined> {
  return db
    .deleteFrom('reactors')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function countReactorsUsingFormula(db: Executor, tenantId: string, formulaId: string): Promise<number> {
  const row = await db
    .selectFrom('reactors')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('tenant_id', '=', tenantId)
    .where('formula_id', '=', formulaId)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export interface ReactorForInvocationRow {
  id: string;
  name: string;
  tenant_id: string;
  configuration: Record<string, ConfigurationValue>;
  application_id: string | null;
  formula_id: string;
  code: string;
  code_hash: string;
  request_parameters: RequestParameter[];
  formula_configuration: ConfigurationOption[];
}

/**
 * The reactor with what running it needs from its formula, in one query. The formula join repeats the tenant
 * scope (own or official), so a row that somehow pointed at another tenant's formula would load nothing.
 */
export async function findReactorForInvocation(
  db: Executor,
  tenantId: string,
  id: string,
): Promise<ReactorForInvocationRow | undefined> {
  return db
    .selectFrom('reactors as r')
    .innerJoin('reactor_formulas as f', 'f.id', 'r.formula_id')
    .select([
      'r.id',
      'r.name',
      'r.tenant_id',
      'r.configuration',
      'r.application_id',
      'r.formula_id',
      'f.code',
      'f.code_hash',
      'f.request_parameters',
      'f.configuration as formula_configuration',
    ])
    .where('r.tenant_id', '=', tenantId)
    .where('r.id', '=', id)
    .where((eb) => eb.or([eb('f.tenant_id', '=', tenantId), eb('f.tenant_id', 'is', null)]))
    .executeTakeFirst();
}
