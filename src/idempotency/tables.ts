import type { ColumnType, Selectable } from 'kysely';

export interface IdempotentRequestsTable {
  /** The application whose API key sent the request: keys are its own, another application's may repeat them. */
  application_id: string;
  idempotency_key: string;
  tenant_id: string;
  /** Rows written before migration 0017 only: the plain sha256 (hex) of the request, compared as it is. */
  request_hash: string | null;
  /**
   * What a retry must match, sealed with the tenant's key (bound to `idempotentFingerprintBoundId`): the request's
   * hash and the key's access when it was first sent (handler.ts `Fingerprint`).
   */
  sealed_fingerprint: Uint8Array | null;
  /** The claim that holds the key (store.ts `Claim.token`); null for rows written before migration 0017. */
  claim_token: string | null;
  /** RUNNING while the first request runs (until `locked_until`), DONE once its response is stored. */
  status: 'RUNNING' | 'DONE';
  http_status: number | null;
  content_type: string | null;
  /** The response body, sealed with the tenant's key (vault), bound to `idempotentResponseBoundId` (./store.ts). */
  response: Uint8Array | null;
  locked_until: Date;
  expires_at: Date;
  created_at: ColumnType<Date, never, never>;
}

export interface IdempotencyTables {
  idempotent_requests: IdempotentRequestsTable;
}

export type IdempotentRequestRow = Selectable<IdempotentRequestsTable>;
