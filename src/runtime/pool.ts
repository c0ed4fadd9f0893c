import { Piscina } from 'piscina';
import { errorOf } from './sandbox/outcome.ts';
import { TaskSlots } from './task-slots.ts';
import {
  type CheckResult,
  type FormulaRuntime,
  type RunInput,
  type RunOutcome,
  type RuntimeOptions,
  type WorkerTask,
  workerOptions,
} from './types.ts';

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
  const pool = new Piscina<WorkerTask, RunOutcome | CheckResult>({
    filename: new URL('./worker.ts', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: CONCURRENT_TASKS_PER_WORKER,
    // Workers hold the compiled-formula caches; letting them idle out would throw the caches away.
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: { runtime: workerOptions(options), slots: slots.shared },
  });

  function terminateThread(threadId: number): void {
    // piscina sees the exit, fails the tasks still on that worker and starts a replacement.
    for (const worker of pool.threads) if (worker.threadId === threadId) void worker.terminate();
  }

  /**
   * The backstop without a piscina AbortSignal: piscina gives a task that has a signal a worker to itself, which
   * turned concurrentTasksPerWorker off for every call and cost about 40 us per call. Instead the worker marks the
   * task's slot when it starts it; a task still queued when its time is up is cancelled (the worker skips it), one
   * that has run longer than its backstop gets its worker terminated.
   */
  function submit<T>(task: WorkerTask, backstopMs: number, onAbort: () => T): Promise<T> {
    const slot = slots.acquire();
    if (slot === undefined) return submitWithSignal(task, backstopMs, onAbort);
    return new Promise<T>((resolve) => {
      let done = false;
      const finish = (value: T) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(value);
      };
      const check = () => {
        const state = slots.state(slot);
        if (state === 'cancelled') return finish(onAbort());
        if (state === 'queued') {
          if (slots.cancel(slot)) return finish(onAbort());
          return check();
        }
        const remaining = backstopMs - slots.runningMs(slot);
        if (remaining > 0) {
          timer = setTimeout(check, remaining);
          return;
        }
        terminateThread(state.threadId);
        finish(onAbort());
      };
      let timer = setTimeout(check, backstopMs);
      pool.run({ ...task, slot } as WorkerTask).then(
        (value) => {
          slots.release(slot);
          finish(value as T);
        },
        () => {
          slots.release(slot);
          finish(onAbort());
        },
      );
    });
  }

  /** Only when more tasks are in flight than there are slots. */
  async function submitWithSignal<T>(task: WorkerTask, backstopMs: number, onAbort: () => T): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), backstopMs);
    try {
      return (await pool.run(task, { signal: controller.signal })) as T;
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
      return submit({ kind: 'run', input: { ...input, timeoutMs } }, timeoutMs + BACKSTOP_GRACE_MS, () => {
        const elapsedMs = Math.round(performance.now() - started);
        // Either the backstop fired (the worker was terminated) or the worker died under another task.
        const error =
          elapsedMs >= timeoutMs
            ? errorOf('REACTOR_TIMEOUT', 504, `Reactor timed out after ${timeoutMs} ms`)
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
        () => ({ ok: false, message: 'Reactor code could not be checked in time' }) as CheckResult,
      );
    },
    async close(): Promise<void> {
      await quiesceWorkers();
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
