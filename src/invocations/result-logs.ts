import type { LogLine } from '../runtime/types.ts';
import type { Vault } from '../tokens/vault.ts';
import type { ReactorRequestRow } from './tables.ts';

/**
 * The console output of an async run, for `AsyncReactorResult.logs`. Kept only while formula logs are exposed
 * (EXPOSE_FORMULA_LOGS, on outside production), as `react` shows them: a formula may print the detokenized data it
 * was given, so the lines are sealed with the tenant's data key, bound to the request like token data to its token,
 * and purged with the result. In production nothing is stored.
 */
export interface ResultLogs {
  /** The sealed lines to store, or null when there are none or logs are not exposed. */
  seal(tenantId: string, requestId: string, logs: readonly LogLine[] | null | undefined): Buffer | null;
  /** A stored row's lines, or null when logs are not exposed or none were kept. */
  open(row: ReactorRequestRow): LogLine[] | null;
}

/** Sealed under this id, so the bytes cannot pass for a token's (or another request's) data. */
export const logsBoundId = (requestId: string) => `reactor-request-logs/${requestId}`;

export function createResultLogs(vault: Vault, expose: boolean): ResultLogs {
  return {
    seal(tenantId, requestId, logs) {
      if (!expose || !logs || logs.length === 0) return null;
      return vault.encrypt(tenantId, logsBoundId(requestId), JSON.stringify(logs));
    },
    open(row) {
      if (!expose || !row.logs) return null;
      return JSON.parse(vault.decrypt(row.tenant_id, logsBoundId(row.id), row.logs)) as LogLine[];
    },
  };
}
