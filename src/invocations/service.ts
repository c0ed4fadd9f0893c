import type { Kysely } from 'kysely';
import type { Principal } from '../auth/service.ts';
import type { Config } from '../config.ts';
import { newId } from '../db/ids.ts';
import { type PageRequest, toPage } from '../db/pagination.ts';
import type { Database } from '../db/tables.ts';
import { BadRequestError, DomainError, NotFoundError } from '../errors.ts';
import type { InvocationMetrics } from '../metrics.ts';
import type { LogLine } from '../runtime/types.ts';
import { isStorableText, UNSTORABLE_TEXT } from '../storable-text.ts';
import type { EventHub, ReactorEvent } from './events.ts';
import {
  checkArgsSize,
  type LoadedReactor,
  type PipelineDeps,
  type ReactorOutput,
  refuseInvalidConfiguration,
  runReactor,
} from './pipeline.ts';
import type { RequestSealing } from './request-sealing.ts';
import * as store from './store.ts';
import type { ReactorRequestRow } from './tables.ts';

export interface ReactorLookup {
  loadReactorForInvocation(tenantId: string, reactorId: string): Promise<LoadedReactor | null>;
}

export type InvocationService = ReturnType<typeof createInvocationService>;

const TERMINAL = new Set(['COMPLETED', 'FAILED']);

/** The request an event is about; `id` null until an event needs it (see `event`). */
interface EventRequest {
  id: string | null;
  invocationType: ReactorEvent['request']['invocationType'];
  applicationId: string;
}

export function createInvocationService(deps: {
  db: Kysely<Database>;
  config: Config;
  reactors: ReactorLookup;
  pipeline: PipelineDeps;
  events: EventHub;
  /** The key that signs this tenant's `callbackUrl` webhooks (BT-SIGNATURE). */
  webhookSecret(tenantId: string): Buffer;
  sealing: RequestSealing;
  metrics: InvocationMetrics;
}) {
  const { db, config, events, metrics } = deps;

  async function loadReactor(principal: Principal, reactorId: string): Promise<LoadedReactor> {
    const loaded = await deps.reactors.loadReactorForInvocation(principal.tenantId, reactorId);
    if (!loaded) throw new NotFoundError('Reactor not found.');
    return loaded;
  }

  /**
   * Publishes an event when someone wants the tenant's events. `react` leaves the request id null until then: the
   * id appears only in events, and the first event that needs it makes it for the rest.
   */
  function event(
    type: ReactorEvent['type'],
    loaded: LoadedReactor,
    request: EventRequest,
    extra: { elapsedMs?: number; error?: DomainError } = {},
  ): void {
    if (!events.wantsEvents(loaded.reactor.tenantId)) return;
    request.id ??= newId();
    events.publishEvent({
      type,
      tenantId: loaded.reactor.tenantId,
      reactor: { id: loaded.reactor.id, name: loaded.reactor.name },
      request: { id: request.id, invocationType: request.invocationType, applicationId: request.applicationId },
      elapsedMs: extra.elapsedMs ?? null,
      error: extra.error?.toShape() ?? null,
      occurredAt: new Date().toISOString(),
    });
  }

  async function findRequest(
    tenantId: string,
    requestId: string,
    queuedBy: string | null,
  ): Promise<ReactorRequestRow | undefined> {
    const stored = await store.findRequest(db, tenantId, requestId, queuedBy);
    return stored && deps.sealing.open(stored);
  }

  /** resultUpdates' states: the row, read again after each change signal, until a terminal state. */
  async function* statesOf(
    principal: Principal,
    requestId: string,
    changes: AsyncIterableIterator<unknown>,
  ): AsyncGenerator<ReactorRequestRow> {
    const tenantId = principal.tenantId;
    const queuedBy = ownInvocationsOnly(principal);
    try {
      let last: string | null = null;
      let row = await findRequest(tenantId, requestId, queuedBy);
      if (!row) throw new NotFoundError('Reactor request not found.');
      while (row) {
        if (row.status !== last) {
          last = row.status;
          yield row;
        }
        if (TERMINAL.has(row.status)) return;
        const next = await changes.next();
        if (next.done) return;
        row = await findRequest(tenantId, requestId, queuedBy);
      }
    } finally {
      await changes.return?.();
    }
  }

  return {
    /** `react`: runs the reactor now and returns its output; failures are thrown as domain errors. */
    async react(
      principal: Principal,
      reactorId: string,
      args: unknown,
      transactionId: string | null,
    ): Promise<ReactorOutput> {
      const loaded = await loadReactor(principal, reactorId);
      checkArgsSize(args, config.limits.maxArgsBytes);
      // One id for the run's invoked and completed/failed events alike. (An object, not a closure: tsx's keepNames
      // makes every closure cost an Object.defineProperty, 3 us of each `react` here; BENCHMARKS.md.)
      const request: EventRequest = { id: null, invocationType: 'SYNC', applicationId: principal.applicationId };
      const started = performance.now();
      event('reactor.invoked', loaded, request);
      try {
        const output = await runReactor(deps.pipeline, principal, loaded, args, {
          timeoutMs: config.limits.reactTimeoutMs,
          transactionId,
        });
        const elapsedMs = Math.round(performance.now() - started);
        metrics.ended('SYNC', 'completed', elapsedMs);
        event('reactor.completed', loaded, request, { elapsedMs });
        return output;
      } catch (error) {
        const elapsedMs = Math.round(performance.now() - started);
        metrics.ended('SYNC', error instanceof DomainError ? error.code.toLowerCase() : 'unexpected', elapsedMs);
        if (error instanceof DomainError) event('reactor.failed', loaded, request, { elapsedMs, error });
        throw error;
      }
    },

    /**
     * `reactAsync`: auth, reactor lookup and the payload limit now; the rest in a runner. The args are stored as sent,
     * expressions intact (detokenized data never reaches the database), and sealed, since a client may send a card
     * number without tokenizing it (request-sealing.ts).
     */
    async reactAsync(
      principal: Principal,
      reactorId: string,
      args: unknown,
      options: { timeoutMs?: number | null; callbackUrl?: string | null },
    ): Promise<ReactorRequestRow> {
      const limits = config.limits.asyncTimeoutMs;
      const timeoutMs = options.timeoutMs ?? limits.default;
      if (!Number.isInteger(timeoutMs) || timeoutMs < limits.min || timeoutMs > limits.max) {
        throw BadRequestError.forFields({ timeoutMs: [`must be between ${limits.min} and ${limits.max}`] });
      }
      const { callbackUrl } = options;
      if (callbackUrl != null) {
        if (!isHttpUrl(callbackUrl))
          throw BadRequestError.forFields({ callbackUrl: ['must be an absolute http(s) URL'] });
        if (!isStorableText(callbackUrl)) throw BadRequestError.forFields({ callbackUrl: [UNSTORABLE_TEXT] });
      }
      // What `react` would refuse whatever the tokens hold, refused now rather than by the run. (A string may be a
      // `{{ token }}` expression that detokenizes to an object, so only the run can judge one.)
      if (Array.isArray(args) || typeof args === 'number' || typeof args === 'boolean') {
        throw BadRequestError.forFields({ args: ['must be an object'] }, 'The args are invalid.');
      }
      const loaded = await loadReactor(principal, reactorId);
      refuseInvalidConfiguration(loaded);
      checkArgsSize(args, config.limits.maxArgsBytes);
      const id = newId();
      const stored = await store.insertRequest(db, {
        id,
        tenant_id: principal.tenantId,
        reactor_id: loaded.reactor.id,
        application_id: principal.applicationId,
        sealed_args: deps.sealing.args(principal.tenantId, id, args),
        timeout_ms: timeoutMs,
        callback_url: callbackUrl ?? null,
      });
      // Opened with the args in hand: nothing to decrypt, and nothing that could fail for a request now queued.
      const row = deps.sealing.openWithArgs(stored, args);
      event('reactor.invoked', loaded, { id: row.id, invocationType: 'ASYNC', applicationId: row.application_id });
      events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: row.status });
      return row;
    },

    /**
     * An async result the caller may read (`ownInvocationsOnly`); null for unknown ids, another reactor's or another
     * tenant's requests alike.
     */
    async result(principal: Principal, reactorId: string | null, requestId: string): Promise<ReactorRequestRow | null> {
      const row = await findRequest(principal.tenantId, requestId, ownInvocationsOnly(principal));
      if (!row || (reactorId !== null && row.reactor_id !== reactorId)) return null;
      return row;
    },

    /** The kept async requests (RESULT_RETENTION_MS) the caller may read, oldest first, optionally of one reactor or status. */
    async listResults(principal: Principal, filter: store.RequestFilter, page: PageRequest) {
      const scoped = { ...filter, queuedBy: ownInvocationsOnly(principal) };
      const rows = await store.listRequests(db, principal.tenantId, scoped, page);
      return toPage(rows.map(deps.sealing.open), page);
    },

    countResults(principal: Principal, filter: store.RequestFilter): Promise<number> {
      return store.countRequests(db, principal.tenantId, { ...filter, queuedBy: ownInvocationsOnly(principal) });
    },

    /**
     * Every state of a request from now on, ending after the terminal one. It listens before it reads, so a change
     * between the client's mutation and its subscription is never missed; states are de-duplicated.
     *
     * return() (the client left) ends it at once, even while it waits for a change: an async generator would queue
     * the return() behind that wait, which for a request no runner takes is forever, and keep its listener. Ending
     * the change stream first wakes the wait with `done`, so the generator finishes and the return() completes.
     */
    resultUpdates(principal: Principal, requestId: string): AsyncIterableIterator<ReactorRequestRow> {
      const changes = events.resultChanges(principal.tenantId, requestId);
      const updates = statesOf(principal, requestId, changes);
      return {
        next: () => updates.next(),
        async return(value?: unknown) {
          await changes.return?.();
          return updates.return(value);
        },
        throw: (error?: unknown) => updates.throw(error),
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    },

    /** The console output kept with an async result (request-sealing.ts); null unless formula logs are exposed. */
    logsOf(row: Pick<ReactorRequestRow, 'id' | 'tenant_id' | 'logs'>): LogLine[] | null {
      return deps.sealing.openLogs(row);
    },

    /** Hex secret a receiver checks `BT-SIGNATURE` with: HMAC-SHA256 of `<BT-TIMESTAMP>.<body>`. */
    webhookSigningSecret(principal: Principal): string {
      return deps.webhookSecret(principal.tenantId).toString('hex');
    },

    events(principal: Principal, reactorId: string | null): AsyncIterableIterator<ReactorEvent> {
      return events.events(principal.tenantId, reactorId, ownInvocationsOnly(principal));
    },
  };
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * Whose invocations (async results, reactor events) a key may see: an application with token containers only its
 * own, since another application's run may have detokenized tokens outside those containers into its `raw` or an
 * error message; any other key, the tenant's (the seeds: reactor:invoke reads a tenant's results). Null: all.
 */
function ownInvocationsOnly(principal: Principal): string | null {
  return principal.tokenContainers === null ? null : principal.applicationId;
}
