import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../db/tables.ts';
import type { ErrorShape } from '../errors.ts';
import type { ReactorRequestRow } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

export async function insertRequest(
  db: Executor,
  request: {
    id: string;
    tenant_id: string;
    reactor_id: string;
    application_id: string;
    args: unknown;
    timeout_ms: number;
    callback_url: string | null;
  },
): Promise<ReactorRequestRow> {
  return db
    .insertInto('reactor_requests')
    .values({ ...request, args: request.args === undefined ? null : JSON.stringify(request.args), status: 'PENDING' })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findRequest(
  db: Executor,
  tenantId: string,
  requestId: string,
): Promise<ReactorRequestRow | undefined> {
  return db
    .selectFrom('reactor_requests')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', requestId)
    .executeTakeFirst();
}

/**
 * Claims up to `limit` pending requests for this runner. `FOR UPDATE SKIP LOCKED` lets every instance claim from the
 * same table without two of them taking the same row; the lease is the request's own timeout plus a grace period,
 * so a live runner always finishes (the sandbox enforces the timeout) before anyone may call it interrupted.
 * Cross-tenant by nature: the queue is the whole table.
 */
export async function claimPending(
  db: Executor,
  runnerId: string,
  limit: number,
  graceMs: number,
): Promise<ReactorRequestRow[]> {
  const claimable = db
    .selectFrom('reactor_requests')
    .select('id')
    .where('status', '=', 'PENDING')
    .orderBy('created_at')
    .limit(limit)
    .forUpdate()
    .skipLocked();
  return db
    .updateTable('reactor_requests')
    .set({
      status: 'RUNNING',
      started_at: sql`now()`,
      lease_until: sql`now() + make_interval(secs => (timeout_ms + ${graceMs}) / 1000.0)`,
      runner_id: runnerId,
    })
    .where('id', 'in', claimable)
    .returningAll()
    .execute();
}

/** Stores the outcome, only if this runner still holds the request (a request already declared interrupted stays so). */
export async function finishRequest(
  db: Executor,
  requestId: string,
  runnerId: string,
  outcome: { raw: unknown; tokens: unknown } | { error: ErrorShape },
): Promise<ReactorRequestRow | undefined> {
  const values =
    'error' in outcome
      ? { status: 'FAILED' as const, error: JSON.stringify(outcome.error) }
      : {
          status: 'COMPLETED' as const,
          raw: outcome.raw === undefined ? null : JSON.stringify(outcome.raw),
          tokens: outcome.tokens === undefined ? null : JSON.stringify(outcome.tokens),
        };
  return db
    .updateTable('reactor_requests')
    .set({ ...values, completed_at: sql`now()`, lease_until: null })
    .where('id', '=', requestId)
    .where('runner_id', '=', runnerId)
    .where('status', '=', 'RUNNING')
    .returningAll()
    .executeTakeFirst();
}

/** Requests whose runner died: failed as interrupted, never re-run (reactors may charge cards). */
export async function failExpiredLeases(db: Executor, error: ErrorShape): Promise<ReactorRequestRow[]> {
  return db
    .updateTable('reactor_requests')
    .set({ status: 'FAILED', error: JSON.stringify(error), completed_at: sql`now()`, lease_until: null })
    .where('status', '=', 'RUNNING')
    .where('lease_until', '<', sql<Date>`now()`)
    .returningAll()
    .execute();
}

export async function purgeFinishedBefore(db: Executor, before: Date): Promise<number> {
  const result = await db
    .deleteFrom('reactor_requests')
    .where('status', 'in', ['COMPLETED', 'FAILED'])
    .where('completed_at', '<', before)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
