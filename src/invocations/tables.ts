import type { ColumnType, Generated, Selectable } from 'kysely';
import type { ErrorShape } from '../errors.ts';

export type RequestStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';

type Json = ColumnType<unknown, string | null | undefined, string | null>;

export interface ReactorRequestsTable {
  id: string;
  tenant_id: string;
  reactor_id: string;
  application_id: string;
  status: RequestStatus;
  args: Json;
  timeout_ms: number;
  callback_url: string | null;
  raw: Json;
  tokens: Json;
  error: ColumnType<ErrorShape | null, string | null | undefined, string | null>;
  created_at: Generated<Date>;
  started_at: Date | null;
  completed_at: Date | null;
  lease_until: Date | null;
  runner_id: string | null;
  /** The turn this request was queued for: runners claim the lowest first (store.ts, migration 0008). */
  queue_turn: Generated<number>;
  /** The run's console output, sealed; only while formula logs are exposed (result-logs.ts, migration 0009). */
  logs: ColumnType<Uint8Array | null, Uint8Array | null | undefined, Uint8Array | null>;
}

export interface InvocationTables {
  reactor_requests: ReactorRequestsTable;
}

export type ReactorRequestRow = Selectable<ReactorRequestsTable>;
