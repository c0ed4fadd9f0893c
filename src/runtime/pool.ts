import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { errorOf, timeoutError } from './sandbox/outcome.ts';
import { createStuckCells, StuckThreads } from './stuck-threads.ts';
import { TaskSlots } from './task-slots.ts';
import { TenantGate } from './tenant-gate.ts';
import { Backstops, type RunTracking, type Tracked, TrackedRun, withTimeLeft } from './tracked-run.ts';
import {
  type BatchAnswer,
  type CheckResult,
  type FormulaRuntime,
  type LateAnswers,
  type RunInput,
  type RunOutcome,
  type RuntimeOptions,
  type SingleTask,
  type WorkerSetup,
  type WorkerTask,
  workerOptions,
} from './types.ts';
import { createWakeCells, PoolWakeCells } from './wake-poll.ts';

export type { CheckResult, FormulaRuntime, LogLine, RunInput, RunOutcome, RuntimeOptions } from './types.ts';

/** Formulas waiting on fetch must not hold a whole thread (DESIGN.md section 5: 367 vs 5,275 calls/s). */
const CONCURRENT_TASKS_PER_WORKER = 16;
/** The worker enforces the timeout itself; this is the backstop for a worker that stopped responding. */
const BACKSTOP_GRACE_MS = 1_000;
const CHECK_BACKSTOP_MS = 5_000;
const CLOSE_WAIT_MS = 3_000;
const QUIESCE_WAIT_MS = 2_000;

export function createFormulaRuntime(options: RuntimeOptions): FormulaRuntime {
  const threads = Math.max(1, options.threads);
  const slots = new TaskSlots();
  const answerChannel = `reactor-gateway-answers-${randomUUID()}`;
  const wakeCells = createWakeCells();
  const stuckCells = createStuckCells();
  const stuck = new StuckThreads(stuckCells);
  const runtimeOptions = workerOptions(options);
  const wake = new PoolWakeCells(wakeCells, runtimeOptions.spinMicros);
  const workerData: WorkerSetup = {
    runtime: runtimeOptions,
    slots: slots.shared,
    answerChannel,
    wakeCells,
    stuckCells,
  };
  const pool = new Piscina<WorkerTask, RunOutcome | CheckResult | BatchAnswer[]>({
    // A path, not a file URL: piscina turns a URL back into a path (a URL parse) on every task. worker.ts from the
    // sources (tests, tsx), worker.js from dist/ (`npm start`, scripts/build.mjs).
    filename: fileURLToPath(new URL(`./worker${path.extname(import.meta.url)}`, import.meta.url)),
    minThreads: threads,
    // The spares: started only when every thread is stuck in a long synchronous call (stuck-threads.ts).
    maxThreads: threads * 2,
    concurrentTasksPerWorker: CONCURRENT_TASKS_PER_WORKER,
    loadBalancer: leastBusyNotStuck(stuck),
    // Workers hold the compiled-formula caches; letting them idle out would throw the caches away.
    idleTimeout: Number.POSITIVE_INFINITY,
    // piscina's run and wait-time histograms: two records per task on this thread, and nothing here reads them.
    recordTiming: false,
    // An idle worker waits in its event loop rather than in Atomics.wait, so work it defers runs while it is idle:
    // building the spare isolate that makes a new formula's first call fast (sandbox/formula-cache.ts), and
    // isolated-vm's cleanup tasks. The crossing costs the same: 1.000 in-process A/B, lone runs back to back
    // (1.013 with 1 ms between them); BENCHMARKS.md, seventh session.
    atomics: 'disabled',
    workerData,
  });

  pool.on('workerDestroy', (worker: { id: number }) => stuck.forget(worker.id));
  // piscina emits 'error' for a worker that failed with no task on it (it starts a replacement itself); without a
  // listener that event would end the process.
  pool.on('error', () => {});

  // A tenant may have as many calls stuck as there are threads; the spares are for everyone else.
  const gate = new TenantGate(threads);
  const tracking: RunTracking = {
    slots,
    backstops: new Backstops({
      lookAtStuckThreads(): boolean {
        const stuckSlots = stuck.stuckSlots();
        const tenants: string[] = [];
        for (const slot of stuckSlots) {
          const task = slot >= 0 ? tracking.bySlot[slot]?.task : undefined;
          if (task?.kind === 'run') tenants.push(task.input.tenantId);
        }
        gate.refresh(tenants);
        return stuckSlots.length > 0;
      },
      holding: () => gate.holding,
    }),
    terminateThread(threadId: number, slot: number): void {
      // A thread inside another run's synchronous call that is still within its own time is busy, not lost: a run
      // of an isolate waiting on that thread for a host callback (a call on isolated-vm's threads) outlives its
      // backstop behind it. That run is answered; the call keeps its thread, and another tenant's long formula is
      // not cut off (its own timeout or backstop ends it).
      const holder = stuck.callSlot(threadId);
      const holding = holder !== undefined && holder !== slot ? tracking.bySlot[holder] : undefined;
      if (holding && holding.deadline > performance.now()) return;
      // piscina sees the exit, fails the tasks still on that worker and starts a replacement.
      for (const worker of pool.threads) if (worker.threadId === threadId) void worker.terminate();
    },
    resubmit: (task, backstopMs, onAbort) => throughGate(task, backstopMs, onAbort, submit),
    bySlot: [],
  };

  type Send<T> = (task: SingleTask, backstopMs: number, onAbort: () => T) => Promise<T>;

  /** `send` now, or, for a run of a tenant over its limit, once the gate lets it go. */
  function throughGate<T>(task: SingleTask, backstopMs: number, onAbort: () => T, send: Send<T>): Promise<T> {
    return task.kind === 'run' && gate.holds(task.input.tenantId)
      ? hold(task, backstopMs, onAbort, send)
      : send(task, backstopMs, onAbort);
  }

  /** A run of a tenant over its limit waits in the gate, then goes with the time it has left, or times out there. */
  function hold<T>(
    task: Extract<SingleTask, { kind: 'run' }>,
    backstopMs: number,
    onAbort: () => T,
    send: Send<T>,
  ): Promise<T> {
    const since = performance.now();
    return new Promise<T>((resolve) => {
      gate.hold(task.input.tenantId, {
        deadline: since + task.input.timeoutMs,
        send: () => {
          const waited = performance.now() - since;
          resolve(send(withTimeLeft(task, waited), Math.max(1, backstopMs - waited), onAbort));
        },
        expire: () => resolve(onAbort()),
      });
      tracking.backstops.start();
    });
  }

  /**
   * The backstop without a piscina AbortSignal: piscina gives a task that has a signal a worker to itself, which
   * turned concurrentTasksPerWorker off for every call and cost about 40 us per call. Instead the worker marks the
   * task's slot when it starts it; a task still queued when its time is up is cancelled (the worker skips it), one
   * that has run longer than its backstop gets its worker terminated.
   */
  function track<T>(task: SingleTask, slot: number, backstopMs: number, onAbort: () => T) {
    const run = new TrackedRun<T>(task, slot, backstopMs, onAbort, tracking);
    return { promise: run.promise, entry: run as Tracked };
  }

  function submit<T>(task: SingleTask, backstopMs: number, onAbort: () => T): Promise<T> {
    const slot = slots.acquire();
    if (slot === undefined) return submitWithSignal(task, backstopMs, onAbort);
    const { promise, entry } = track(task, slot, backstopMs, onAbort);
    runAlone(entry, false);
    return promise;
  }

  /**
   * Runs submitted in one turn of the event loop go to the workers together: one piscina task per worker instead
   * of one per run. Under load each piscina task (a structured-clone postMessage and a wake-up of the worker) was
   * the largest cost of `react` on the main thread. A batch's answers come back in its result when its runs all
   * finish at once; a batch still running after that sends each answer on the answer channel as soon as it is ready
   * (worker.ts), so a slow formula never holds up the fast ones. A run that finds nothing else in flight goes at
   * once: waiting a turn of the loop for company costs an idle gateway about 20 us per call.
   */
  const queuedRuns: Tracked[] = [];
  const batchesInFlight = new Set<Promise<unknown>>();
  const openBatches = new Map<number, OpenBatch>();
  let batchSeq = 0;
  let dispatchScheduled = false;
  let runsInFlight = 0;
  // One channel for every batch, instead of a MessageChannel made, transferred and closed per batch (about 20 us
  // of this thread each, and a MessagePort whose listener kept the batch's runs alive into the old generation).
  const lateAnswers = new BroadcastChannel(answerChannel);
  lateAnswers.onmessage = (event) => {
    const { batch, answers } = (event as { data: LateAnswers }).data;
    openBatches.get(batch)?.answer(answers);
  };
  lateAnswers.unref();

  function submitRun(task: SingleTask, backstopMs: number, onAbort: () => RunOutcome): Promise<RunOutcome> {
    return throughGate(task, backstopMs, onAbort, dispatchRun);
  }

  function dispatchRun(task: SingleTask, backstopMs: number, onAbort: () => RunOutcome): Promise<RunOutcome> {
    const slot = slots.acquire();
    if (slot === undefined) return submitWithSignal(task, backstopMs, onAbort);
    const { promise, entry } = track(task, slot, backstopMs, onAbort);
    runsInFlight++;
    const settled = promise.finally(() => runsInFlight--);
    if (runsInFlight === 1) {
      // Alone: nothing else is in flight, so this thread polls for the answer rather than sleep (wake-poll.ts).
      runAlone(entry, true);
      return settled;
    }
    queuedRuns.push(entry);
    if (!dispatchScheduled) {
      dispatchScheduled = true;
      setImmediate(dispatchQueuedRuns);
    }
    return settled;
  }

  function dispatchQueuedRuns(): void {
    dispatchScheduled = false;
    const runs = queuedRuns.splice(0);
    const perWorker = Math.ceil(runs.length / threads);
    for (let start = 0; start < runs.length; start += perWorker) dispatchBatch(runs.slice(start, start + perWorker));
  }

  /** One task as its own piscina task: its result is its answer. */
  function runAlone(entry: Tracked, pollForAnswer: boolean): void {
    const answersSeen = wake.answers();
    pool.run(entry.task).then(
      (value) => entry.answered(value),
      () => entry.failed(),
    );
    wake.dispatched(pollForAnswer);
    if (pollForAnswer) wake.awaitAnswer(answersSeen);
  }

  function dispatchBatch(entries: Tracked[]): void {
    if (entries.length === 1) {
      runAlone(entries[0] as Tracked, false);
      return;
    }
    const batch = new OpenBatch(++batchSeq, entries, openBatches);
    const done = pool.run({ kind: 'batch', batch: batch.id, tasks: entries.map((entry) => entry.task) }).then(
      // Late answers were all posted before the worker returned; any not yet here is on its way.
      (answers) => batch.answer(answers as BatchAnswer[]),
      () => batch.fail(),
    );
    wake.dispatched(false);
    // close() waits for batches a worker is still running.
    batchesInFlight.add(done);
    void done.finally(() => batchesInFlight.delete(done));
  }

  /** Only when more tasks are in flight than there are slots. */
  async function submitWithSignal<T>(task: SingleTask, backstopMs: number, onAbort: () => T): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), backstopMs);
    try {
      const answer = pool.run(task, { signal: controller.signal });
      wake.dispatched(false);
      return (await answer) as T;
    } catch {
      return onAbort();
    } finally {
      clearTimeout(timer);
    }
  }
  /** Each worker disposes its isolates and collects their handles before it is terminated (see worker.ts). */
  async function quiesceWorkers(): Promise<void> {
    const pending = new Set(pool.threads.map((worker) => worker.threadId));
    const deadline = performance.now() + QUIESCE_WAIT_MS;
    // piscina gives each task to an idle worker first, so one round usually reaches every worker; repeat for any missed.
    for (let round = 0; round < 3 && pending.size > 0 && performance.now() < deadline; round++) {
      const answers = await Promise.all(
        [...pending].map(() =>
          submit<CheckResult>({ kind: 'quiesce' }, Math.max(1, deadline - performance.now()), () => ({
            ok: false,
            message: '',
            reason: 'unavailable',
          })),
        ),
      );
      for (const answer of answers) if (!answer.ok) pending.delete(Number(answer.message));
    }
  }

  return {
    async run(input: RunInput): Promise<RunOutcome> {
      const started = performance.now();
      const timeoutMs = Math.max(1, Math.floor(input.timeoutMs));
      return submitRun({ kind: 'run', input: { ...input, timeoutMs } }, timeoutMs + BACKSTOP_GRACE_MS, () => {
        const elapsedMs = Math.round(performance.now() - started);
        // Either the backstop fired (the worker was terminated) or the worker died under another task.
        const error =
          elapsedMs >= timeoutMs
            ? timeoutError(timeoutMs)
            : errorOf(
                'REACTOR_INTERRUPTED',
                500,
                'The reactor run was interrupted before it finished; it was not retried.',
              );
        return { ok: false, error, logs: [], elapsedMs } as RunOutcome;
      });
    },
    checkCode(code: string): Promise<CheckResult> {
      return submit(
        { kind: 'check', code },
        CHECK_BACKSTOP_MS,
        // No worker answered: the gateway is overloaded, not the code at fault (its own limit is the worker's 500 ms).
        () =>
          ({ ok: false, message: 'Reactor code could not be checked in time', reason: 'unavailable' }) as CheckResult,
      );
    },
    stats() {
      return { threads: pool.threads.length, queued: pool.queueSize, stuckThreads: stuck.stuckSlots().length };
    },
    async close(): Promise<void> {
      // A worker still busy with a batch would miss its quiesce task (they go to idle workers first).
      await Promise.allSettled([...batchesInFlight]);
      await quiesceWorkers();
      lateAnswers.close();
      // Known issue: terminating a worker right after an isolate resumed from a host callback occasionally never
      // completes (isolated-vm teardown); bound the wait so shutdown cannot hang the process.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pool.destroy(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_WAIT_MS);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    },
  };
}

/**
 * piscina's own least-busy choice (an idle worker first, else the one with the fewest tasks, never one running an
 * abortable task), leaving out threads stuck in a long synchronous formula call. Only with every thread stuck does
 * it return null, on which piscina queues the task and starts a spare thread (up to maxThreads). So, unlike piscina's
 * balancer, it goes past concurrentTasksPerWorker rather than answer null: a busy pool must not start spares.
 */
type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;

function leastBusyNotStuck(stuck: StuckThreads): LoadBalancer {
  return (task, workers) => {
    let candidate = null;
    let fewest = Number.POSITIVE_INFINITY;
    for (const worker of workers) {
      if (stuck.isStuck(worker.id)) continue;
      if (worker.currentUsage === 0) return worker;
      if (worker.isRunningAbortableTask || task.isAbortable) continue;
      if (worker.currentUsage < fewest) {
        candidate = worker;
        fewest = worker.currentUsage;
      }
    }
    return candidate;
  };
}

/** A batch whose runs are not all answered yet. */
class OpenBatch {
  private readonly pending: Set<number>;

  constructor(
    readonly id: number,
    private readonly entries: Tracked[],
    private readonly open: Map<number, OpenBatch>,
  ) {
    this.pending = new Set(entries.keys());
    open.set(id, this);
  }

  answer(answers: BatchAnswer[]): void {
    for (const { index, outcome } of answers) if (this.pending.delete(index)) this.entries[index]?.answered(outcome);
    if (this.pending.size === 0) this.open.delete(this.id);
  }

  /** The worker died or the task failed: every run not answered yet gets its onAbort outcome. */
  fail(): void {
    for (const index of this.pending) this.entries[index]?.failed();
    this.pending.clear();
    this.open.delete(this.id);
  }
}
