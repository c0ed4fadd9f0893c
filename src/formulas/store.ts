import { type Kysely, sql, type Transaction } from 'kysely';
import { type PageRequest, wildcardPattern } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import type { ConfigurationOption, FormulaType, RequestParameter } from './rules.ts';
import type { FormulaRow } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

export interface FormulaFilter {
  name?: string | null;
}

export interface FormulaValues {
  name: string;
  description: string | null;
  type: FormulaType;
  icon: string | null;
  code: string;
  code_hash: string;
  configuration: ConfigurationOption[];
  request_parameters: RequestParameter[];
}

function serialized<T extends FormulaValues>(values: T) {
  return {
    ...values,
    configuration: JSON.stringify(values.configuration),
    request_parameters: JSON.stringify(values.request_parameters),
  };
}

/**
 * Reads see the tenant's own formulas and the official ones (tenant_id NULL); writes (below) only ever the
 * tenant's own, so an official formula can never be changed through a tenant.
 */
function visibleTo(db: Executor, tenantId: string) {
  return db
    .selectFrom('reactor_formulas')
    .selectAll()
    .where((eb) => eb.or([eb('tenant_id', '=', tenantId), eb('tenant_id', 'is', null)]));
}

export async function findFormula(db: Executor, tenantId: string, id: string): Promise<FormulaRow | undefined> {
  return visibleTo(db, tenantId).where('id', '=', id).executeTakeFirst();
}

export async function findFormulasByIds(db: Executor, tenantId: string, ids: readonly string[]): Promise<FormulaRow[]> {
  if (ids.length === 0) return [];
  return visibleTo(db, tenantId)
    .where('id', 'in', [...ids])
    .execute();
}

export async function listFormulas(
  db: Executor,
  tenantId: string,
  filter: FormulaFilter,
  page: PageRequest,
): Promise<FormulaRow[]> {
  let query = visibleTo(db, tenantId);
  if (filter.name) query = query.where('name', 'ilike', wildcardPattern(filter.name, 'name'));
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.size + 1)
    .execute();
}

export async function countFormulas(db: Executor, tenantId: string, filter: FormulaFilter): Promise<number> {
  let query = db
    .selectFrom('reactor_formulas')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where((eb) => eb.or([eb('tenant_id', '=', tenantId), eb('tenant_id', 'is', null)]));
  if (filter.name) query = query.where('name', 'ilike', wildcardPattern(filter.name, 'name'));
  const row = await query.executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function insertFormula(
  db: Executor,
  tenantId: string,
  formula: FormulaValues & { id: string; created_by: string },
): Promise<FormulaRow> {
  return db
    .insertInto('reactor_formulas')
    .values({ ...serialized(formula), tenant_id: tenantId })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Replaces every field of one of the tenant's own formulas; undefined when the tenant owns no such formula. */
export async function replaceFormula(
  db: Executor,
  tenantId: string,
  id: string,
  formula: FormulaValues & { modified_by: string },
): Promise<FormulaRow | undefined> {
  return db
    .updateTable('reactor_formulas')
    .set({ ...serialized(formula), modified_at: sql<Date>`now()` })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Locks one of the tenant's own formulas until the end of the transaction, so no reactor starts using it meanwhile. */
export async function lockOwnFormula(db: Executor, tenantId: string, id: string): Promise<FormulaRow | undefined> {
  return db
    .selectFrom('reactor_formulas')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

export async function deleteFormula(db: Executor, tenantId: string, id: string): Promise<FormulaRow | undefined> {
  return db
    .deleteFrom('reactor_formulas')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}
