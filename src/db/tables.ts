import type { AuthTables } from '../auth/tables.ts';
import type { FormulaTables } from '../formulas/tables.ts';
import type { IdempotencyTables } from '../idempotency/tables.ts';
import type { InvocationTables } from '../invocations/tables.ts';
import type { ReactorTables } from '../reactors/tables.ts';
import type { TokenTables } from '../tokens/tables.ts';
import type { TransactionTables } from '../transactions/tables.ts';

/**
 * The whole database as Kysely sees it: each feature declares its own tables next to its store
 * (`src/<feature>/tables.ts`) and this interface joins them.
 */
export interface Database
  extends AuthTables,
    FormulaTables,
    IdempotencyTables,
    ReactorTables,
    InvocationTables,
    TokenTables,
    TransactionTables {}
