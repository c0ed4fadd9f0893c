import type { ColumnType, Generated, Selectable } from 'kysely';
import type { ErrorShape } from '../errors.ts';

export type RequestStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';

type Json = ColumnType<unknown, string | null | undefined, string | null>;
type Sealed = ColumnType<Uint8Array | null, Uint8Array | null | undefined, Uint8Array | null>;

export interface ReactorRequestsTable {
  id: string;
  tenant_id: string;
  reactor_id: string;
  application_id: string;
  status: RequestStatus;
  /** Rows queued before migration 0016 only: newer rows keep their args in `sealed_args`. */
  args: Json;
  timeout_ms: number;
  callback_url: string | null;
  /** Rows finished before migration 0016 only: newer rows keep a run's outcome in `sealed_outcome`. */
  raw: Json;
  tokens: Json;
  /**
   * A run's error is sealed in `sealed_outcome`; this column holds the gateway's own, which carry none of a run's
   * data: the sweeper's (interrupted, never started), and an outcome that could not be sealed.
   */
  error: ColumnType<ErrorShape | null, string | null | undefined, string | null>;
  created_at: Generated<Date>;
  started_at: Date | null;
  completed_at: Date | null;
  lease_until: Date | null;
  runner_id: string | null;
  /** The turn this request was queued for: runners claim the lowest first (store.ts, migration 0008). */
  queue_turn: Generated<number>;
  /** The run's console output, sealed; only while formula logs are exposed (request-sealing.ts, migration 0009). */
  logs: Sealed;
  /** The args as sent, sealed with the tenant's data key (request-sealing.ts, migration 0016); null for none. */
  sealed_args: Sealed;
  /** A finished run's `{ raw, tokens }` or `{ error }`, sealed likewise; null until the run ends. */
  sealed_outcome: Sealed;
}

export interface InvocationTables {
  reactor_requests: ReactorRequestsTable;
}

/** A row as the database holds it: args and outcome sealed. Only request-sealing.ts turns it into a ReactorRequestRow. */
export type StoredRequestRow = Selectable<ReactorRequestsTable>;

declare const opened: unique symbol;

/**
 * A request with its args and outcome opened (`RequestSealing.open`), as everything outside the store reads it. The
 * brand keeps a stored row from passing for one: a forgotten open would otherwise read null args and results.
 */
export type ReactorRequestRow = Omit<StoredRequestRow, 'sealed_args' | 'sealed_outcome'> & { readonly [opened]: true };
