import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/tables.ts';
import type { IdempotentRequestRow } from './tables.ts';

/**
 * The bound id a stored response is sealed under (the vault's AEAD binds it to its key and application). Here, not in
 * the handler, so that the key rotation can reseal responses without loading the HTTP and GraphQL layers.
 */
export const idempotentResponseBoundId = (applicationId: string, key: string) =>
  `idempotent-response/${applicationId}/${key}`;

/** The bound id a request's fingerprint (handler.ts) is sealed under. */
export const idempotentFingerprintBoundId = (applicationId: string, key: string) =>
  `idempotent-fingerprint/${applicationId}/${key}`;

export interface Claim {
  applicationId: string;
  tenantId: string;
  key: string;
  /** What a retry must match, sealed (handler.ts). */
  sealedFingerprint: Uint8Array;
  /**
   * This claim's own id: the writes that follow (renew, complete, release) touch the row only while it is still this
   * claim's, so a request whose lease lapsed never completes or frees a key a retry has taken over since.
   */
  token: string;
  /** How long after its last renewal (renewLease, while it runs) a retry may take the key over: its gateway died. */
  leaseMs: number;
  /** How long the stored response answers retries. */
  retentionMs: number;
}

/**
 * Takes the key for a request about to run: a new key, or one whose stored response has expired, or one whose
 * first request's lease has passed without a response (its gateway died). True when this request is to run; one
 * statement, so two requests with one key never both run.
 */
export async function claim(db: Kysely<Database>, request: Claim): Promise<boolean> {
  const lockedUntil = sql<Date>`now() + ${`${request.leaseMs} milliseconds`}::interval`;
  const expiresAt = sql<Date>`now() + ${`${request.retentionMs} milliseconds`}::interval`;
  const { rows } = await sql<{ taken: boolean }>`
    insert into idempotent_requests
      (application_id, idempotency_key, tenant_id, sealed_fingerprint, claim_token, status, locked_until, expires_at)
    values (${request.applicationId}, ${request.key}, ${request.tenantId}, ${request.sealedFingerprint},
      ${request.token}, 'RUNNING', ${lockedUntil}, ${expiresAt})
    on conflict (application_id, idempotency_key) do update set
      request_hash = null, sealed_fingerprint = excluded.sealed_fingerprint, claim_token = excluded.claim_token,
      status = 'RUNNING', http_status = null, content_type = null,
      response = null, locked_until = excluded.locked_until, expires_at = excluded.expires_at
    where idempotent_requests.expires_at < now()
      or (idempotent_requests.status = 'RUNNING' and idempotent_requests.locked_until < now())
    returning true as taken`.execute(db);
  return rows.length === 1;
}

export async function find(
  db: Kysely<Database>,
  applicationId: string,
  key: string,
): Promise<IdempotentRequestRow | undefined> {
  return db
    .selectFrom('idempotent_requests')
    .selectAll()
    .where('application_id', '=', applicationId)
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
}

/** Stores the first request's response, while the key is still its claim's; later requests with the key get it. */
export async function complete(
  db: Kysely<Database>,
  claimed: Pick<Claim, 'applicationId' | 'key' | 'token'>,
  response: { httpStatus: number; contentType: string | null; sealed: Uint8Array },
): Promise<void> {
  await db
    .updateTable('idempotent_requests')
    .set({
      status: 'DONE',
      http_status: response.httpStatus,
      content_type: response.contentType,
      response: response.sealed,
    })
    .where('application_id', '=', claimed.applicationId)
    .where('idempotency_key', '=', claimed.key)
    .where('claim_token', '=', claimed.token)
    .where('status', '=', 'RUNNING')
    .execute();
}

/** Keeps the key of a request still running: its lease starts again from now. */
export async function renewLease(db: Kysely<Database>, request: Claim): Promise<void> {
  await db
    .updateTable('idempotent_requests')
    .set({ locked_until: sql<Date>`now() + ${`${request.leaseMs} milliseconds`}::interval` })
    .where('application_id', '=', request.applicationId)
    .where('idempotency_key', '=', request.key)
    .where('claim_token', '=', request.token)
    .where('status', '=', 'RUNNING')
    .execute();
}

/** Gives the key back (the request failed on the server's side), if still this claim's: a retry runs again. */
export async function release(db: Kysely<Database>, claimed: Pick<Claim, 'applicationId' | 'key' | 'token'>) {
  await db
    .deleteFrom('idempotent_requests')
    .where('application_id', '=', claimed.applicationId)
    .where('idempotency_key', '=', claimed.key)
    .where('claim_token', '=', claimed.token)
    .where('status', '=', 'RUNNING')
    .execute();
}

export async function purgeExpired(db: Kysely<Database>): Promise<number> {
  const result = await db
    .deleteFrom('idempotent_requests')
    .where('expires_at', '<', sql<Date>`now()`)
    .where((eb) => eb.or([eb('status', '=', 'DONE'), eb('locked_until', '<', sql<Date>`now()`)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
