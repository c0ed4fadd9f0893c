import type { ColumnType, Generated, Selectable } from 'kysely';
import type { ConfigurationValue } from './configuration.ts';

export interface ReactorsTable {
  id: string;
  tenant_id: string;
  name: string;
  formula_id: string;
  application_id: string | null;
  /** Values already cast to the formula's declared types; written as a JSON string, read back as the object. */
  configuration: ColumnType<Record<string, ConfigurationValue>, string, string>;
  created_by: string | null;
  created_at: Generated<Date>;
  modified_by: string | null;
  modified_at: Date | null;
}

export interface ReactorTables {
  reactors: ReactorsTable;
}

export type ReactorRow = Selectable<ReactorsTable>;
