import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AuthService } from '../auth/service.ts';
import type { Database } from '../db/tables.ts';
import { DomainError, NotFoundError, ReactorInterruptedError, UnauthenticatedError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { EventHub } from './events.ts';
import { type PipelineDeps, runReactor } from './pipeline.ts';
import type { ReactorLookup } from './service.ts';
import * as store from './store.ts';
import type { ReactorRequestRow } from './tables.ts';
import type { WebhookSender } from './webhooks.ts';

export interface RunnerOptions {
  concurrency: number;
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
  log: Logger;
  options: RunnerOptions;
}) {
  const { db, events, log, options } = deps;
  const runnerId = `${process.pid}-${randomUUID()}`;
  const inFlight = new Set<Promise<void>>();
  let stopped = true;
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
      let rows: ReactorRequestRow[];
      try {
        rows = await store.claimPending(db, runnerId, free, options.leaseGraceMs);
      } catch (error) {
        log.error({ err: error }, 'claiming async reactor requests failed');
        return;
      }
      for (const row of rows) {
        const job = execute(row).finally(() => {
          inFlight.delete(job);
          wake();
        });
        inFlight.add(job);
      }
      if (rows.length === free) claimAgain = true;
    } while (claimAgain && !stopped);
  }

  async function execute(row: ReactorRequestRow): Promise<void> {
    events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: 'RUNNING' });
    const started = performance.now();
    let outcome: { raw: unknown; tokens: unknown } | { error: ReturnType<DomainError['toShape']> };
    let loaded: Awaited<ReturnType<ReactorLookup['loadReactorForInvocation']>> = null;
    try {
      const principal = await deps.auth.principalFor(row.application_id);
      if (!principal) throw new UnauthenticatedError('The application that queued this request no longer exists.');
      loaded = await deps.reactors.loadReactorForInvocation(row.tenant_id, row.reactor_id);
      if (!loaded) throw new NotFoundError('Reactor not found (deleted after the request was queued).');
      const output = await runReactor(deps.pipeline, principal, loaded, row.args, {
        timeoutMs: row.timeout_ms,
        transactionId: null,
      });
      outcome = { raw: output.raw, tokens: output.tokens };
    } catch (error) {
      if (!(error instanceof DomainError)) log.error({ err: error, requestId: row.id }, 'async reactor run failed');
      const domain =
        error instanceof DomainError
          ? error
          : new ReactorInterruptedError('The run failed unexpectedly and was not retried.');
      outcome = { error: domain.toShape() };
    }
    const finished = await store.finishRequest(db, row.id, runnerId, outcome).catch((error: unknown) => {
      log.error({ err: error, requestId: row.id }, 'storing an async reactor result failed');
      return undefined;
    });
    if (!finished) return;
    const elapsedMs = Math.round(performance.now() - started);
    events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: finished.status });
    events.publishEvent({
      type: finished.status === 'COMPLETED' ? 'reactor.completed' : 'reactor.failed',
      tenantId: row.tenant_id,
      reactor: { id: row.reactor_id, name: loaded?.reactor.name ?? '' },
      request: { id: row.id, invocationType: 'ASYNC' },
      elapsedMs,
      error: finished.error ?? null,
      occurredAt: new Date().toISOString(),
    });
    if (finished.callback_url) deps.webhooks.deliver(finished);
  }

  async function sweep(): Promise<void> {
    try {
      const interrupted = await store.failExpiredLeases(db, new ReactorInterruptedError().toShape());
      for (const row of interrupted) {
        log.warn({ requestId: row.id }, 'async reactor request interrupted (its runner died); not retried');
        events.publishResultChange({ tenantId: row.tenant_id, requestId: row.id, status: 'FAILED' });
        events.publishEvent({
          type: 'reactor.failed',
          tenantId: row.tenant_id,
          reactor: { id: row.reactor_id, name: '' },
          request: { id: row.id, invocationType: 'ASYNC' },
          elapsedMs: null,
          error: row.error ?? null,
          occurredAt: new Date().toISOString(),
        });
      }
      await store.purgeFinishedBefore(db, new Date(Date.now() - options.resultRetentionMs));
    } catch (error) {
      log.error({ err: error }, 'sweeping async reactor requests failed');
    }
  }

  return {
    runnerId,
    start(): void {
      stopped = false;
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
    /** Stops claiming and waits for the runs in flight (their results are stored). */
    async stop(): Promise<void> {
      stopped = true;
      unsubscribe?.();
      for (const timer of timers.splice(0)) clearInterval(timer);
      await claiming;
      await Promise.allSettled([...inFlight]);
    },
  };
}

export type JobRunner = ReturnType<typeof createJobRunner>;
