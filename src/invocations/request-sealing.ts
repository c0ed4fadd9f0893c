import type { ErrorShape } from '../errors.ts';
import type { LogLine } from '../runtime/types.ts';
import type { Vault } from '../tokens/vault.ts';
import type { EventErrorSeal } from './events.ts';
import type { ReactorRequestRow, StoredRequestRow } from './tables.ts';

/** What a finished run leaves: its result, or its error. */
export type RequestOutcome = { raw: unknown; tokens: unknown } | { error: ErrorShape };

/**
 * What an async request keeps of the data it carries, sealed with the tenant's data key as token data is: its args
 * as sent (a client may send a card number without tokenizing it), the run's outcome (a formula's `raw` or error
 * message may hold the detokenized data it was given) and, while formula logs are exposed (EXPOSE_FORMULA_LOGS, on
 * outside production), its console output. Each is bound to its request under its own id, so sealed bytes cannot
 * pass for a token's data, another request's, or another part of the same request. Rows written before migration
 * 0016 keep args and outcome in plain columns, read as they are until the retention period purges them.
 */
export interface RequestSealing {
  /** The sealed args, or null when there are none. */
  args(tenantId: string, requestId: string, args: unknown): Buffer | null;
  outcome(tenantId: string, requestId: string, outcome: RequestOutcome): Buffer;
  /** The sealed lines to store, or null when there are none or logs are not exposed. */
  logs(tenantId: string, requestId: string, logs: readonly LogLine[] | null | undefined): Buffer | null;
  /** A stored row with its args and outcome in the clear, for the runner, the API and callbacks. */
  open(row: StoredRequestRow): ReactorRequestRow;
  /** The same with the args the caller has in hand (it has just sealed them): nothing of them to decrypt. */
  openWithArgs(row: StoredRequestRow, args: unknown): ReactorRequestRow;
  /** A stored row's lines, or null when logs are not exposed or none were kept. */
  openLogs(row: Pick<StoredRequestRow, 'id' | 'tenant_id' | 'logs'>): LogLine[] | null;
  /** The text of a reactor event's error, sealed (base64) for other instances (events.ts). */
  eventError: EventErrorSeal;
}

export const argsBoundId = (requestId: string) => `reactor-request-args/${requestId}`;
export const outcomeBoundId = (requestId: string) => `reactor-request-outcome/${requestId}`;
export const logsBoundId = (requestId: string) => `reactor-request-logs/${requestId}`;
const eventErrorBoundId = (requestId: string) => `reactor-event-error/${requestId}`;

export function createRequestSealing(vault: Vault, exposeLogs: boolean): RequestSealing {
  const seal = (tenantId: string, boundId: string, value: unknown) =>
    vault.encrypt(tenantId, boundId, JSON.stringify(value));
  const unseal = (tenantId: string, boundId: string, sealed: Uint8Array): unknown =>
    JSON.parse(vault.decrypt(tenantId, boundId, sealed));

  function open(row: StoredRequestRow): ReactorRequestRow {
    const { sealed_args, sealed_outcome, ...plain } = row;
    const opened = { ...plain };
    if (sealed_args) opened.args = unseal(row.tenant_id, argsBoundId(row.id), sealed_args);
    if (sealed_outcome) {
      const outcome = unseal(row.tenant_id, outcomeBoundId(row.id), sealed_outcome) as Partial<
        { raw: unknown; tokens: unknown } & { error: ErrorShape }
      >;
      opened.raw = outcome.raw ?? null;
      opened.tokens = outcome.tokens ?? null;
      opened.error = outcome.error ?? null;
    }
    return opened as ReactorRequestRow;
  }

  return {
    args(tenantId, requestId, args) {
      return args === undefined || args === null ? null : seal(tenantId, argsBoundId(requestId), args);
    },
    outcome(tenantId, requestId, outcome) {
      return seal(tenantId, outcomeBoundId(requestId), outcome);
    },
    logs(tenantId, requestId, logs) {
      if (!exposeLogs || !logs || logs.length === 0) return null;
      return seal(tenantId, logsBoundId(requestId), logs);
    },
    openWithArgs: (row, args) => ({ ...open({ ...row, sealed_args: null }), args: args ?? null }),
    open,
    eventError: {
      seal: (tenantId, requestId, text) => seal(tenantId, eventErrorBoundId(requestId), text).toString('base64'),
      open: (tenantId, requestId, sealed) =>
        unseal(tenantId, eventErrorBoundId(requestId), Buffer.from(sealed, 'base64')) as {
          message: string;
          detail: string | null;
        },
    },
    openLogs(row) {
      if (!exposeLogs || !row.logs) return null;
      return unseal(row.tenant_id, logsBoundId(row.id), row.logs) as LogLine[];
    },
  };
}
