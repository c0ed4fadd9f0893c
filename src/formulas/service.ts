import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Principal } from '../auth/service.ts';
import { newId } from '../db/ids.ts';
import { type Page, type PageRequest, toPage } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import {
  ConflictError,
  ForbiddenError,
  InvalidReactorCodeError,
  NotFoundError,
  ServiceUnavailableError,
} from '../errors.ts';
import { countReactorsUsingFormula } from '../reactors/store.ts';
import type { FormulaRuntime } from '../runtime/pool.ts';
import { type FormulaInput, type FormulaLimits, type NormalizedFormulaInput, validateFormulaInput } from './rules.ts';
import * as store from './store.ts';
import type { FormulaRow } from './tables.ts';

export type FormulaService = ReturnType<typeof createFormulaService>;

const NOT_FOUND = 'Reactor formula not found.';

export function codeHash(code: string): string {
  return createHash('sha256').update(code).digest('hex');
}

export function createFormulaService(deps: {
  db: Kysely<Database>;
  runtime: FormulaRuntime;
  limits: FormulaLimits;
  /** Told after a formula changed or went away (the invocation cache of this instance drops its reactors at once). */
  onChange?: (change: { formula: string }) => void;
}) {
  const { db } = deps;

  /**
   * The input as stored, or the first failure in the order a client should fix them: authority (only the operator
   * publishes OFFICIAL formulas: FORBIDDEN, since no change of input would make it allowed), then the fields
   * (BAD_REQUEST), then the code, compiled in the sandbox and never on this thread (INVALID_REACTOR_CODE).
   */
  async function checkedInput(input: FormulaInput): Promise<store.FormulaValues> {
    if (input.type === 'OFFICIAL') {
      throw new ForbiddenError(
        'Official reactor formulas are published by the gateway operator; create a PRIVATE one.',
      );
    }
    const formula: NormalizedFormulaInput = validateFormulaInput(input, deps.limits);
    const check = await deps.runtime.checkCode(formula.code);
    if (!check.ok && check.reason === 'unavailable') {
      throw new ServiceUnavailableError(`${check.message}; nothing was saved, try again.`);
    }
    if (!check.ok) throw new InvalidReactorCodeError(`Reactor formula code is invalid: ${check.message}`);
    return {
      name: formula.name,
      description: formula.description,
      type: formula.type,
      icon: formula.icon,
      code: formula.code,
      code_hash: codeHash(formula.code),
      configuration: formula.configuration,
      request_parameters: formula.requestParameters,
    };
  }

  /** Official formulas are visible to every tenant but belong to none: writing one is FORBIDDEN, not NOT_FOUND. */
  async function ownedOrThrow(principal: Principal, id: string): Promise<void> {
    const formula = await store.findFormula(db, principal.tenantId, id);
    if (!formula) throw new NotFoundError(NOT_FOUND);
    if (formula.tenant_id === null) throw new ForbiddenError('Official reactor formulas are read-only.');
  }

  return {
    getFormula(principal: Principal, id: string): Promise<FormulaRow | undefined> {
      return store.findFormula(db, principal.tenantId, id);
    },

    /** Batch load for DataLoaders: rows in any order, missing ids simply absent. */
    loadFormulas(tenantId: string, ids: readonly string[]): Promise<FormulaRow[]> {
      return store.findFormulasByIds(db, tenantId, ids);
    },

    async listFormulas(
      principal: Principal,
      filter: store.FormulaFilter,
      page: PageRequest,
    ): Promise<Page<FormulaRow>> {
      return toPage(await store.listFormulas(db, principal.tenantId, filter, page), page);
    },

    countFormulas(principal: Principal, filter: store.FormulaFilter): Promise<number> {
      return store.countFormulas(db, principal.tenantId, filter);
    },

    async createFormula(principal: Principal, input: FormulaInput): Promise<FormulaRow> {
      const values = await checkedInput(input);
      return store.insertFormula(db, principal.tenantId, {
        ...values,
        id: newId(),
        created_by: principal.applicationId,
      });
    },

    /** A full replace (PUT): every field takes the input's value, absent optional ones becoming null or empty. */
    async updateFormula(principal: Principal, id: string, input: FormulaInput): Promise<FormulaRow> {
      await ownedOrThrow(principal, id);
      const values = await checkedInput(input);
      const updated = await store.replaceFormula(db, principal.tenantId, id, {
        ...values,
        modified_by: principal.applicationId,
      });
      // Deleted while its code was being checked.
      if (!updated) throw new NotFoundError(NOT_FOUND);
      deps.onChange?.({ formula: id });
      return updated;
    },

    async deleteFormula(principal: Principal, id: string): Promise<FormulaRow> {
      await ownedOrThrow(principal, id);
      return db.transaction().execute(async (trx) => {
        // The lock makes "count, then delete" atomic: a reactor being created on this formula either committed
        // before (and is counted) or waits and then fails its foreign key (and is refused as BAD_REQUEST).
        const formula = await store.lockOwnFormula(trx, principal.tenantId, id);
        if (!formula) throw new NotFoundError(NOT_FOUND);
        const users = await countReactorsUsingFormula(trx, principal.tenantId, id);
        if (users > 0) {
          throw new ConflictError(
            `Reactor formula is used by ${users} reactor${users === 1 ? '' : 's'}; delete them first.`,
            { detail: `reactors: ${users}` },
          );
        }
        await store.deleteFormula(trx, principal.tenantId, id);
        return formula;
      });
    },
  };
}
