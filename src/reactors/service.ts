import type { Kysely } from 'kysely';
import type { Principal } from '../auth/service.ts';
import { findApplication } from '../auth/store.ts';
import { newId } from '../db/ids.ts';
import { MAX_LISTED_IDS, type Page, type PageRequest, toPage } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import { BadRequestError, type FieldErrors, NotFoundError } from '../errors.ts';
import type { ConfigurationOption, RequestParameter } from '../formulas/rules.ts';
import { findFormula } from '../formulas/store.ts';
import {
  applyReactorPatch,
  type ConfigurationValue,
  checkStoredConfiguration,
  type ReactorPatch,
  validateReactorInput,
} from './configuration.ts';
import * as store from './store.ts';
import type { ReactorRow } from './tables.ts';

export type ReactorService = ReturnType<typeof createReactorService>;

export interface CreateReactorInput {
  name: string;
  formulaId: string;
  configuration: Record<string, unknown>;
  applicationId?: string | null;
}

export interface UpdateReactorInput {
  name: string;
  configuration: Record<string, unknown>;
  applicationId?: string | null;
}

/** What `react` needs to run a reactor: loaded in one tenant-scoped query (official formulas included). */
export interface ReactorForInvocation {
  reactor: {
    id: string;
    name: string;
    tenantId: string;
    configuration: Record<string, ConfigurationValue>;
    /** How the configuration breaks the formula's current contract (the formula changed since), or null. */
    configurationErrors: FieldErrors | null;
    applicationId: string | null;
  };
  formula: {
    id: string;
    code: string;
    codeHash: string;
    requestParameters: RequestParameter[];
    configuration: ConfigurationOption[];
  };
}

const NOT_FOUND = 'Reactor not found.';
const UNKNOWN_FORMULA = 'is not a reactor formula of this tenant (or an official one)';
const UNKNOWN_APPLICATION = 'is not an application of this tenant';

export function createReactorService(deps: {
  db: Kysely<Database>;
  /** Told after a reactor changed or went away (the invocation cache of this instance drops it at once). */
  onChange?: (change: { reactor: string }) => void;
}) {
  const { db } = deps;

  /**
   * The seeds: the application's key is handed to the formula, so it "must be a public or private Application
   * Type". Another tenant's application reads exactly like an unknown one.
   */
  async function applicationErrors(tenantId: string, applicationId: string | null | undefined): Promise<FieldErrors> {
    if (applicationId == null) return {};
    const application = await findApplication(db, tenantId, applicationId);
    if (!application) return { applicationId: [UNKNOWN_APPLICATION] };
    if (application.type === 'MANAGEMENT') {
      return { applicationId: ['must be a PUBLIC or PRIVATE application, not a MANAGEMENT one'] };
    }
    return {};
  }

  async function existing(principal: Principal, id: string): Promise<ReactorRow> {
    const reactor = await store.findReactor(db, principal.tenantId, id);
    if (!reactor) throw new NotFoundError(NOT_FOUND);
    return reactor;
  }

  async function contractOf(tenantId: string, formulaId: string): Promise<ConfigurationOption[]> {
    const formula = await findFormula(db, tenantId, formulaId);
    // The foreign key keeps a reactor's formula alive, so a missing formula means the reactor read a moment ago
    // has been deleted since (and then its formula): the same answer as if the read had come after.
    if (!formula) throw new NotFoundError(NOT_FOUND);
    return formula.configuration;
  }

  async function replace(principal: Principal, id: string, values: store.ReactorValues): Promise<ReactorRow> {
    const updated = await store
      .replaceReactor(db, principal.tenantId, id, { ...values, modified_by: principal.applicationId })
      .catch(rethrowReferenceError);
    // Deleted between the read and the write.
    if (!updated) throw new NotFoundError(NOT_FOUND);
    return updated;
  }

  return {
    getReactor(principal: Principal, id: string): Promise<ReactorRow | undefined> {
      return store.findReactor(db, principal.tenantId, id);
    },

    async listReactors(
      principal: Principal,
      filter: store.ReactorFilter,
      page: PageRequest,
    ): Promise<Page<ReactorRow>> {
      checkFilter(filter);
      return toPage(await store.listReactors(db, principal.tenantId, filter, page), page);
    },

    countReactors(principal: Principal, filter: store.ReactorFilter): Promise<number> {
      return store.countReactors(db, principal.tenantId, filter);
    },

    async createReactor(principal: Principal, input: CreateReactorInput): Promise<ReactorRow> {
      const formula = await findFormula(db, principal.tenantId, input.formulaId);
      const known = await applicationErrors(principal.tenantId, input.applicationId);
      if (!formula) known.formulaId = [UNKNOWN_FORMULA];
      const { name, configuration } = validateReactorInput(input, formula?.configuration ?? null, known);
      return store
        .insertReactor(db, principal.tenantId, {
          id: newId(),
          name,
          formula_id: input.formulaId,
          configuration,
          application_id: input.applicationId ?? null,
          created_by: principal.applicationId,
        })
        .catch(rethrowReferenceError);
    },

    /** PUT: name, configuration and application all replaced (an absent applicationId detaches); formula kept. */
    async updateReactor(principal: Principal, id: string, input: UpdateReactorInput): Promise<ReactorRow> {
      const reactor = await existing(principal, id);
      const contract = await contractOf(principal.tenantId, reactor.formula_id);
      const known = await applicationErrors(principal.tenantId, input.applicationId);
      const { name, configuration } = validateReactorInput(input, contract, known);
      const updated = await replace(principal, id, {
        name,
        configuration,
        application_id: input.applicationId ?? null,
      });
      deps.onChange?.({ reactor: id });
      return updated;
    },

    /** RFC 7386 merge-patch: absent keeps, null clears, configuration merged key by key, the result validated. */
    async patchReactor(principal: Principal, id: string, patch: ReactorPatch): Promise<ReactorRow> {
      const reactor = await existing(principal, id);
      const contract = await contractOf(principal.tenantId, reactor.formula_id);
      const merged = applyReactorPatch(
        { name: reactor.name, configuration: reactor.configuration, applicationId: reactor.application_id },
        patch,
        contract,
      );
      if (patch.applicationId !== undefined) {
        const errors = await applicationErrors(principal.tenantId, patch.applicationId);
        if (Object.keys(errors).length > 0) throw BadRequestError.forFields(errors, 'The reactor is invalid.');
      }
      const patched = await replace(principal, id, {
        name: merged.name,
        configuration: merged.configuration as Record<string, ConfigurationValue>,
        application_id: merged.applicationId,
      });
      deps.onChange?.({ reactor: id });
      return patched;
    },

    async deleteReactor(principal: Principal, id: string): Promise<ReactorRow> {
      const deleted = await store.deleteReactor(db, principal.tenantId, id);
      if (!deleted) throw new NotFoundError(NOT_FOUND);
      deps.onChange?.({ reactor: id });
      return deleted;
    },

    async loadReactorForInvocation(tenantId: string, reactorId: string): Promise<ReactorForInvocation | null> {
      const row = await store.findReactorForInvocation(db, tenantId, reactorId);
      if (!row) return null;
      // Checked here, once per load (the result is cached with it), rather than on every run.
      const checked = checkStoredConfiguration(row.formula_configuration, row.configuration);
      return {
        reactor: {
          id: row.id,
          name: row.name,
          tenantId: row.tenant_id,
          configuration: checked.errors ? row.configuration : checked.configuration,
          configurationErrors: checked.errors,
          applicationId: row.application_id,
        },
        formula: {
          id: row.formula_id,
          code: row.code,
          codeHash: row.code_hash,
          requestParameters: row.request_parameters,
          configuration: row.formula_configuration,
        },
      };
    },
  };
}

function checkFilter(filter: store.ReactorFilter): void {
  if (filter.ids && filter.ids.length > MAX_LISTED_IDS) {
    throw BadRequestError.forFields({ ids: [`must list at most ${MAX_LISTED_IDS} ids`] });
  }
}

/**
 * The checks above read the formula and application before writing; one deleted in between makes the write fail
 * its foreign key. That is the same bad reference the check reports, so it gets the same answer.
 */
function rethrowReferenceError(error: unknown): never {
  const { code, constraint } = (error ?? {}) as { code?: string; constraint?: string };
  if (code === '23503' && constraint === 'reactors_formula_id_fkey') {
    throw BadRequestError.forFields({ formulaId: [UNKNOWN_FORMULA] }, 'The reactor is invalid.');
  }
  if (code === '23503' && constraint === 'reactors_application_id_fkey') {
    throw BadRequestError.forFields({ applicationId: [UNKNOWN_APPLICATION] }, 'The reactor is invalid.');
  }
  throw error;
}
