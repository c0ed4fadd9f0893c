import type { ColumnType, Generated, Selectable } from 'kysely';

export type ApplicationType = 'MANAGEMENT' | 'PRIVATE' | 'PUBLIC';

export interface TenantsTable {
  id: string;
  name: string;
  created_at: Generated<Date>;
}

export interface ApplicationsTable {
  id: string;
  tenant_id: string;
  name: string;
  type: ApplicationType;
  permissions: ColumnType<string[], string[] | undefined, string[]>;
  /** Container paths `token:use` covers (migration 0007); null covers every container. */
  token_containers: ColumnType<string[] | null, string[] | null | undefined, string[] | null>;
  key_hash: string;
  key_prefix: string;
  created_by: string | null;
  created_at: Generated<Date>;
  /** The application that last changed this one, and when (migration 0012); null until then. */
  modified_by: ColumnType<string | null, string | null | undefined, string | null>;
  modified_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface AuthTables {
  tenants: TenantsTable;
  applications: ApplicationsTable;
}

export type TenantRow = Selectable<TenantsTable>;
export type ApplicationRow = Selectable<ApplicationsTable>;
