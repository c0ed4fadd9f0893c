import type { ColumnType, Generated, Selectable } from 'kysely';
import type { ConfigurationOption, FormulaType, RequestParameter } from './rules.ts';

export type FormulaStatus = 'VERIFIED' | 'COMING_SOON';

/** jsonb columns: written as a JSON string (pg and PGlite both parse it into jsonb), read back as the value. */
type Jsonb<T> = ColumnType<T, string, string>;

export interface ReactorFormulasTable {
  id: string;
  /** NULL for official formulas, which every tenant sees and none may change. */
  tenant_id: string | null;
  name: string;
  description: string | null;
  type: FormulaType;
  status: ColumnType<FormulaStatus, FormulaStatus | undefined, FormulaStatus>;
  icon: string | null;
  code: string;
  /** sha256 (hex) of `code`: the runtime's cache key for the compiled formula. */
  code_hash: string;
  configuration: Jsonb<ConfigurationOption[]>;
  request_parameters: Jsonb<RequestParameter[]>;
  created_by: string | null;
  created_at: Generated<Date>;
  modified_by: string | null;
  modified_at: Date | null;
}

export interface FormulaTables {
  reactor_formulas: ReactorFormulasTable;
}

export type FormulaRow = Selectable<ReactorFormulasTable>;
