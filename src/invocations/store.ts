import { type Kysely, sql, type Transaction } from 'kysely';
import type { PageRequest } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import type { ErrorShape } from '../errors.ts';
import type { RequestStatus, StoredRequestRow } from './tables.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/**
 * Queues a request for its tenant's next turn. Runners claim turn by turn (`claimPending`), so a tenant's backlog
 * takes one place per turn and never holds up another tenant's requests for longer than a turn: a request goes one
 * turn after its tenant's last pending one, and never before the turn the queue is at (the lowest pending one), so a
 * tenant that queues after a quiet spell joins the current turn instead of jumping ahead of everyone (start-time fair
 * queuing, with a turn for virtual time). Two requests of one tenant queued at the same moment may share a turn; the
 * claim orders a turn's requests first-come.
 */
export async function insertRequest(
  db: Executor,
  request: {
    id: string;
    tenant_id: string;
    reactor_id: string;
    application_id: string;
    /** The args as sent, sealed (request-sealing.ts); null for none. */
    sealed_args: Uint8Array | null;
    timeout_ms: number;
    callback_url: string | null;
  },
): Promise<StoredRequestRow> {
  const tenantNextTurn = db
    .selectFrom('reactor_requests')
    .select(sql<number>`max(queue_turn) + 1`.as('turn'))
    .where('tenant_id', '=', request.tenant_id)
    .where('status', '=', 'PENDING');
  const currentTurn = db
    .selectFrom('reactor_requests')
    .select(sql<number>`min(queue_turn)`.as('turn'))
    .where('status', '=', 'PENDING');
  return db
    .insertInto('reactor_requests')
    .values({
      ...request,
      status: 'PENDING',
      queue_turn: sql<number>`greatest(coalesce((${tenantNextTurn}), 0), coalesce((${currentTurn}), 0))`,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** A request of the tenant; with `queuedBy`, only one that application queued. */
export async function findRequest(
  db: Executor,
  tenantId: string,
  requestId: string,
  queuedBy: string | null = null,
): Promise<StoredRequestRow | undefined> {
  let query = db.selectFrom('reactor_requests').selectAll().where('tenant_id', '=', tenantId);
  if (queuedBy !== null) query = query.where('application_id', '=', queuedBy);
  return query.where('id', '=', requestId).executeTakeFirst();
}

export interface RequestFilter {
  reactorId?: string | null;
  status?: RequestStatus | null;
  /** Only the requests this application queued. */
  queuedBy?: string | null;
}

function filteredRequests(db: Executor, tenantId: string, filter: RequestFilter) {
  let query = db.selectFrom('reactor_requests').where('tenant_id', '=', tenantId);
  if (filter.reactorId) query = query.where('reactor_id', '=', filter.reactorId);
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.queuedBy) query = query.where('application_id', '=', filter.queuedBy);
  return query;
}

/** A page of the tenant's kept async requests, oldest first (keyset on the (tenant_id, id) index). */
export async function listRequests(
  db: Executor,
  tenantId: string,
  filter: RequestFilter,
  page: PageRequest,
): Promise<StoredRequestRow[]> {
  let query = filteredRequests(db, tenantId, filter).selectAll();
  if (page.afterId) query = query.where('id', '>', page.afterId);
  return query
    .orderBy('id')
    .limit(page.size + 1)
    .execute();
}

export async function countRequests(db: Executor, tenantId: string, filter: RequestFilter): Promise<number> {
  const row = await filteredRequests(db, tenantId, filter)
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/**
 * Claims up to `limit` pending requests for this runner. `FOR UPDATE SKIP LOCKED` lets every instance claim from the
 * same table without two of them taking the same row; the lease is the request's own timeout plus a grace period,
 * so a live runner always finishes (the sandbox enforces the timeout) before anyone may call it interrupted.
 * Cross-tenant by nature: the queue is the whole table, taken turn by turn (`insertRequest`), first-come within one.
 */
export async function claimPending(
  db: Executor,
  runnerId: string,
  limit: number,
  graceMs: number,
  /** Tenants whose requests this claim leaves for later (the runner's reserved slot, runner.ts). */
  exceptTenants: readonly string[] = [],
): Promise<StoredRequestRow[]> {
  const claimable = db
    .selectFrom('reactor_requests')
    .select('id')
    .where('status', '=', 'PENDING')
    .$if(exceptTenants.length > 0, (query) => query.where('tenant_id', 'not in', exceptTenants))
    .orderBy('queue_turn')
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

/** Back to the queue, unstarted, only if this runner still holds the request (it keeps its place: queue_turn). */
export async function releaseRequest(
  db: Executor,
  requestId: string,
  runnerId: string,
): Promise<StoredRequestRow | undefined> {
  return db
    .updateTable('reactor_requests')
    .set({ status: 'PENDING', started_at: null, lease_until: null, runner_id: null })
    .where('id', '=', requestId)
    .where('runner_id', '=', runnerId)
    .where('status', '=', 'RUNNING')
    .returningAll()
    .executeTakeFirst();
}

/** Stores the outcome, only if this runner still holds the request (a request already declared interrupted stays so). */
export async function finishRequest(
  db: Executor,
  requestId: string,
  runnerId: string,
  outcome: {
    status: 'COMPLETED' | 'FAILED';
    /** `{ raw, tokens }` or `{ error }`, sealed (request-sealing.ts); null with `error` when it could not be. */
    sealed: Uint8Array | null;
    /** An error of the gateway's own, stored plain (no data of the run's in it). */
    error: ErrorShape | null;
    /** The run's sealed console output, or null. */
    logs: Uint8Array | null;
  },
): Promise<StoredRequestRow | undefined> {
  return db
    .updateTable('reactor_requests')
    .set({
      status: outcome.status,
      sealed_outcome: outcome.sealed,
      error: outcome.error === null ? null : JSON.stringify(outcome.error),
      logs: outcome.logs,
      completed_at: sql`now()`,
      lease_until: null,
    })
    .where('id', '=', requestId)
    .where('runner_id', '=', runnerId)
    .where('status', '=', 'RUNNING')
    .returningAll()
    .executeTakeFirst();
}

/** Requests whose runner died: failed as interrupted, never re-run (reactors may charge cards). */
export async function failExpiredLeases(db: Executor, error: ErrorShape): Promise<StoredRequestRow[]> {
  return db
    .updateTable('reactor_requests')
    .set({ status: 'FAILED', error: JSON.stringify(error), completed_at: sql`now()`, lease_until: null })
    .where('status', '=', 'RUNNING')
    .where('lease_until', '<', sql<Date>`now()`)
    .returningAll()
    .execute();
}

/**
 * Requests no runner started before `queuedBefore` (no instance runs jobs, or none has for that long): failed with
 * `error`, never run. A reactor may charge a card; a run a day after the request is not what its caller asked for.
 */
export async function failNeverStarted(
  db: Executor,
  queuedBefore: Date,
  error: ErrorShape,
): Promise<StoredRequestRow[]> {
  return db
    .updateTable('reactor_requests')
    .set({ status: 'FAILED', error: JSON.stringify(error), completed_at: sql`now()` })
    .where('status', '=', 'PENDING')
    .where('created_at', '<', queuedBefore)
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

/**
 * Queued and running requests of every tenant, for the metrics endpoint (src/metrics.ts): across tenants by design,
 * like the sweepers, and only counts leave it. Each count walks its partial index (migrations 0004 and 0008).
 */
export async function countUnfinished(db: Executor): Promise<{ pending: number; running: number }> {
  const { rows } = await sql<{ pending: number; running: number }>`select
    (select count(*) from reactor_requests where status = 'PENDING')::int as pending,
    (select count(*) from reactor_requests where status = 'RUNNING')::int as running`.execute(db);
  return rows[0] ?? { pending: 0, running: 0 };
}
