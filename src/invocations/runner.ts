import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { AuthService } from '../auth/service.ts';
import type { Database } from '../db/tables.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import type { ErrorShape } from '../errors.ts';
import {
  DomainError,
  NotFoundError,
  ReactorInterruptedError,
  ServiceUnavailableError,
  UnauthenticatedError,
} from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { InvocationMetrics } from '../metrics.ts';
import type { LogLine } from '../runtime/types.ts';
import type { EventHub } from './events.ts';
import { type PipelineDeps, runReactor } from './pipeline.ts';
import type { RequestOutcome, RequestSealing } from './request-sealing.ts';
import type { ReactorLookup } from './service.ts';
import * as store from './store.ts';
import type { ReactorRequestRow, StoredRequestRow } from './tables.ts';
import type { WebhookSender } from './webhooks.ts';

export interface RunnerOptions {
  concurrency: number;
  /**
   * How many of the free slots, the last ones, go only to tenants with no run on this runner. Without them one
   * tenant's backlog of long runs takes every slot, and a request of another tenant waits, first in line, for one of
   * those runs to end (up to 210 s). The price: a tenant alone keeps `concurrency - reservedSlots` slots busy.
   */
  reservedSlots: number;
  /** How long a request may wait for a runner; after that the sweeper fails it, unrun. */
  maxQueueMs: number;
  /** Grace beyond a request's own timeout before a RUNNING request counts as interrupted. */
  leaseGraceMs: number;
  resultRetentionMs: number;
  /** Fallback polling when no notification arrives (another instance's NOTIFY may be lost on reconnect). */
  pollIntervalMs: number;
  sweepIntervalMs: number;
}

/**
 * The async job runner of one gateway process. It claims pending requests with SKIP LOCKED (so any number of
 * instances share one queue), runs them through the same pipeline as `react`, and stores the outcome. It is woken by
 * the NOTIFY that `reactAsync` sends and polls as a fallback. At most once: a claimed request is never claimed again;
 * if its runner dies, the sweeper marks it FAILED / REACTOR_INTERRUPTED once its lease has passed.
 */
export function createJobRunner(deps: {
  db: Kysely<Database>;
  auth: AuthService;
  reactors: ReactorLookup;
  pipeline: PipelineDeps;
  events: EventHub;
  webhooks: WebhookSender;
  sealing: RequestSealing;
  metrics: InvocationMetrics;
  log: Logger;
  options: RunnerOptions;
}) {
  const { db, events, log, options, metrics, sealing } = deps;
  const runnerId = `${process.pid}-${randomUUID()}`;
  /** Each run in flight, with its tenant. */
  const inFlight = new Map<Promise<void>, string>();
  let stopped = true;
  /** Aborted by stop(): ends the waits between retries of a write while the database is away. */
  let stopping = new AbortController();
  let claiming: Promise<void> | null = null;
  let claimAgain = false;
  const timers: NodeJS.Timeout[] = [];
  let unsubscribe: (() => void) | null = null;

  function wake(): void {
    if (stopped) return;
    if (claiming) {
      claimAgain = true;
      return;
    }
    claiming = claimLoop().finally(() => {
      claiming = null;
    });
  }

  async function claimLoop(): Promise<void> {
    do {
      claimAgain = false;
      const free = options.concurrency - inFlight.size;
      if (free <= 0 || stopped) return;
      const open = Math.max(0, free - options.reservedSlots);
      // Whether every slot asked for was filled: then the queue may hold more, and runs may have ended meanwhile.
      let filled: boolean;
      try {
        const rows = open > 0 ? await store.claimPending(db, runnerId, open, options.leaseGraceMs) : [];
        startAll(rows);
        filled = rows.length === open;
        // The reserved slots one at a time, so that each goes to another tenant.
        for (let reserved = free - open; filled && reserved > 0 && !stopped; reserved--) {
          const tenantsHere = [...new Set(inFlight.values())];
          const row = await store.claimPending(db, runnerId, 1, options.leaseGraceMs, tenantsHere);
          startAll(row);
          filled = row.length === 1;
        }
      } catch (error) {
        log.error({ err: error }, 'claiming async reactor requests failed');
        return;
      }
      if (filled) claimAgain = true;
    } while (claimAgain && !stopped);
  }

  function startAll(rows: StoredRequestRow[]): void {
    for (const row of rows) {
      const job = execute(row).finally(() => {
        inFlight.delete(job);
        wake();
      });
      inFlight.set(job, row.tenant_id);
    }
  }

  async function execute(row: StoredRequestRow): Promise<void> {
    events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: 'RUNNING' });
    const started = performance.now();
    let outcome: RequestOutcome;
    let loaded: Awaited<ReturnType<ReactorLookup['loadReactorForInvocation']>> = null;
    let logs: readonly LogLine[] | null = null;
    let formulaRan = false;
    try {
      const principal = await deps.auth.principalFor(row.application_id);
      if (!principal) throw new UnauthenticatedError('The application that queued this request no longer exists.');
      loaded = await deps.reactors.loadReactorForInvocation(row.tenant_id, row.reactor_id);
      if (!loaded) throw new NotFoundError('Reactor not found (deleted after the request was queued).');
      const output = await runReactor(deps.pipeline, principal, loaded, sealing.open(row).args, {
        timeoutMs: row.timeout_ms,
        transactionId: null,
        onRun: () => {
          formulaRan = true;
        },
      });
      outcome = { raw: output.raw, tokens: output.tokens };
      logs = output.logs;
    } catch (error) {
      // The database went away before the formula ran (loading the key, the reactor or the tokens): nothing has
      // happened yet, so the request goes back to the queue rather than failing for an outage.
      if (!formulaRan && isDatabaseUnavailable(error) && (await requeue(row))) return;
      if (!(error instanceof DomainError)) log.error({ err: error, requestId: row.id }, 'async reactor run failed');
      const domain =
        error instanceof DomainError
          ? error
          : new ReactorInterruptedError('The run failed unexpectedly and was not retried.');
      outcome = { error: domain.toShape() };
      logs = domain.formulaLogs;
    }
    const sealed = sealedOutcome(row, outcome, logs);
    const finished = await whileUnavailable(row.id, 'storing an async reactor result', () =>
      store.finishRequest(db, row.id, runnerId, sealed),
    );
    if (!finished) return;
    const elapsedMs = Math.round(performance.now() - started);
    const error = sealed.error ?? ('error' in outcome ? outcome.error : null);
    metrics.ended('ASYNC', outcomeOf(finished.status, error), elapsedMs);
    events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: finished.status });
    events.publishEvent({
      type: finished.status === 'COMPLETED' ? 'reactor.completed' : 'reactor.failed',
      tenantId: row.tenant_id,
      reactor: { id: row.reactor_id, name: loaded?.reactor.name ?? '' },
      request: { id: row.id, invocationType: 'ASYNC', applicationId: row.application_id },
      elapsedMs,
      error,
      occurredAt: new Date().toISOString(),
    });
    deliverCallback(finished);
  }

  /**
   * The outcome and console output as stored: sealed. Output that cannot be sealed is dropped, since the outcome
   * matters more; an outcome that cannot be sealed (the tenant's key is gone: a rotation this gateway missed) is
   * stored as a plain error saying so rather than in the clear or not at all, so the request still ends.
   */
  function sealedOutcome(row: StoredRequestRow, outcome: RequestOutcome, logs: readonly LogLine[] | null) {
    let sealedLogs: Uint8Array | null = null;
    try {
      sealedLogs = sealing.logs(row.tenant_id, row.id, logs);
    } catch (error) {
      log.error({ err: error, requestId: row.id }, 'sealing an async run’s logs failed');
    }
    try {
      const status = 'error' in outcome ? ('FAILED' as const) : ('COMPLETED' as const);
      return { status, sealed: sealing.outcome(row.tenant_id, row.id, outcome), error: null, logs: sealedLogs };
    } catch (error) {
      log.error({ err: error, requestId: row.id }, 'sealing an async run’s outcome failed');
      // Not an interruption (the run may have completed, tokens and all): the gateway cannot store what it made.
      const lost = new ServiceUnavailableError('The run ended, but its outcome could not be sealed for storing.');
      return { status: 'FAILED' as const, sealed: null, error: lost.toShape(), logs: null };
    }
  }

  /** POSTs a finished request to its callbackUrl, opened; a row that cannot be opened is logged, not sent. */
  function deliverCallback(stored: StoredRequestRow): void {
    if (!stored.callback_url) return;
    try {
      deps.webhooks.deliver(sealing.open(stored));
    } catch (error) {
      log.error({ err: error, requestId: stored.id }, 'opening an async result for its callback failed');
    }
  }

  /**
   * A write about a claimed request, tried again while the database is unreachable (a restart, a failover) for as
   * long as the lease's grace lasts: an outcome is kept, or a request requeued, rather than the request failed as
   * interrupted by a sweeper. A late write changes nothing: these writes only touch a RUNNING request of this runner.
   * A shutdown ends the retries at once (the process is leaving): the request stays RUNNING, and the sweeper of any
   * instance fails it as interrupted once its lease has passed, as for a runner that died.
   */
  async function whileUnavailable<T>(requestId: string, what: string, write: () => Promise<T>): Promise<T | undefined> {
    const giveUpAt = Date.now() + options.leaseGraceMs;
    const { signal } = stopping;
    for (let waitMs = 250; ; waitMs = Math.min(waitMs * 2, 5_000)) {
      try {
        return await write();
      } catch (error) {
        if (!isDatabaseUnavailable(error) || Date.now() + waitMs > giveUpAt || signal.aborted) {
          log.error({ err: error, requestId }, `${what} failed`);
          return undefined;
        }
        log.warn({ requestId }, `the database is unavailable; ${what} again shortly`);
        await sleep(waitMs, undefined, { signal }).catch(() => {});
      }
    }
  }

  /** Puts a request this runner claimed but did not start back in the queue; false if that could not be done. */
  async function requeue(row: StoredRequestRow): Promise<boolean> {
    const released = await whileUnavailable(row.id, 'requeueing an async request', () =>
      store.releaseRequest(db, row.id, runnerId),
    );
    if (!released) return false;
    events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: 'PENDING' });
    return true;
  }

  /**
   * Fails what no run will finish: requests whose runner died (their lease has passed) and requests no runner has
   * started within `maxQueueMs`. Neither is ever run again; both tell subscribers and callbacks.
   */
  async function sweep(): Promise<void> {
    try {
      for (const row of await store.failExpiredLeases(db, new ReactorInterruptedError().toShape())) {
        log.warn({ requestId: row.id }, 'async reactor request interrupted (its runner died); not retried');
        await failedBySweep(row);
      }
      const neverStarted = new ServiceUnavailableError(
        `No job runner started this request within ${duration(options.maxQueueMs)} of its queueing; it was not run.`,
      );
      const queuedBefore = new Date(Date.now() - options.maxQueueMs);
      for (const row of await store.failNeverStarted(db, queuedBefore, neverStarted.toShape())) {
        log.warn({ requestId: row.id }, 'async reactor request never started (no runner took it); not run');
        await failedBySweep(row);
      }
      await store.purgeFinishedBefore(db, new Date(Date.now() - options.resultRetentionMs));
    } catch (error) {
      log.error({ err: error }, 'sweeping async reactor requests failed');
    }
  }

  async function failedBySweep(row: StoredRequestRow): Promise<void> {
    metrics.ended('ASYNC', outcomeOf(row.status, row.error), null);
    events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: 'FAILED' });
    // The reactor's name for the event, as a finished run's event has it ('' if the reactor is gone meanwhile).
    const loaded = await deps.reactors.loadReactorForInvocation(row.tenant_id, row.reactor_id).catch(() => null);
    events.publishEvent({
      type: 'reactor.failed',
      tenantId: row.tenant_id,
      reactor: { id: row.reactor_id, name: loaded?.reactor.name ?? '' },
      request: { id: row.id, invocationType: 'ASYNC', applicationId: row.application_id },
      elapsedMs: null,
      error: row.error ?? null,
      occurredAt: new Date().toISOString(),
    });
    deliverCallback(row);
  }

  function stopClaiming(): void {
    stopped = true;
    unsubscribe?.();
    unsubscribe = null;
    for (const timer of timers.splice(0)) clearInterval(timer);
  }

  return {
    runnerId,
    start(): void {
      stopped = false;
      stopping = new AbortController();
      unsubscribe = events.onRequestQueued(wake);
      timers.push(
        setInterval(wake, options.pollIntervalMs),
        setInterval(() => void sweep(), options.sweepIntervalMs),
      );
      for (const timer of timers) timer.unref();
      void sweep();
      wake();
    },
    /** Exposed for tests and for the shutdown path. */
    sweep,
    /**
     * Claims nothing more; the runs in flight go on, and keep retrying their writes through an outage (a shutdown
     * calls this at the signal, and `stop` once the HTTP side has drained).
     */
    stopClaiming,
    /** Stops claiming and waits for the runs in flight (their results are stored). */
    async stop(): Promise<void> {
      stopClaiming();
      stopping.abort();
      await claiming;
      await Promise.allSettled([...inFlight.keys()]);
    },
  };
}

export type JobRunner = ReturnType<typeof createJobRunner>;

/** 86400000 -> "24 h", 90000 -> "90 s". */
function duration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** A finished request's outcome as the metrics name it: `completed`, or its error code in lower case. */
function outcomeOf(status: ReactorRequestRow['status'], error: ErrorShape | null): string {
  return status === 'COMPLETED' ? 'completed' : (error?.code ?? 'unexpected').toLowerCase();
}
