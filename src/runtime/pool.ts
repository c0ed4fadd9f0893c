import { Piscina } from 'piscina';
import { errorOf } from './sandbox/outcome.ts';
import { type CheckResult, type FormulaRuntime, type RunInput, type RunOutcome, type RuntimeOptions, type WorkerTask, workerOptions } from './types.ts';

export type { CheckResult, FormulaRuntime, LogLine, RunInput, RunOutcome, RuntimeOptions } from './types.ts';

/** Formulas waiting on fetch must not hold a whole thread (DESIGN.md section 5: 367 vs 5,275 calls/s). */
const CONCURRENT_TASKS_PER_WORKER = 16;
/** The worker enforces the timeout itself; this is the backstop for a worker that stopped responding. */
const BACKSTOP_GRACE_MS = 1_000;
const CHECK_BACKSTOP_MS = 5_000;
const CLOSE_WAIT_MS = 3_000;

export function createFormulaRuntime(options: RuntimeOptions): FormulaRuntime {
  const threads = Math.max(1, options.threads);
  const pool = new Piscina<WorkerTask, RunOutcome | CheckResult>({
    filename: new URL('./worker.ts', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: CONCURRENT_TASKS_PER_WORKER,
    // Workers hold the compiled-formula caches; letting them idle out would throw the caches away.
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: { runtime: workerOptions(options) },
  });

  async function submit<T>(task: WorkerTask, backstopMs: number, onAbort: () => T): Promise<T> {
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
            : errorOf('REACTOR_INTERRUPTED', 500, 'The reactor run was interrupted before it finished; it was not retried.');
        return { ok: false, error, logs: [], elapsedMs } as RunOutcome;
      });
    },
    checkCode(code: string): Promise<CheckResult> {
      return submit({ kind: 'check', code }, CHECK_BACKSTOP_MS, () => ({ ok: false, message: 'Reactor code could not be checked in time' }) as CheckResult);
    },
    async close(): Promise<void> {
      // Known issue: terminating a worker right after an isolate resumed from a host callback occasionally never
      // completes (isolated-vm teardown); bound the wait so shutdown cannot hang the process.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([pool.destroy(), new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS); timer.unref(); })]);
      clearTimeout(timer);
    },
  };
}
