import type { TaskSlots } from './task-slots.ts';
import type { SingleTask } from './types.ts';

/** A submitted task with its backstop running: settled by the worker's answer or by its failure. */
export interface Tracked {
  task: SingleTask;
  answered(value: unknown): void;
  failed(): void;
}

/** What a run's backstop needs from its pool. */
export interface RunTracking {
  slots: TaskSlots;
  backstops: Backstops;
  terminateThread(threadId: number): void;
}

/** How often the backstops are looked at; a backstop fires up to this much after its time (it has 1 s of grace). */
const SWEEP_MS = 100;

/**
 * The backstops of every run in flight, looked at by one interval timer instead of a setTimeout and clearTimeout
 * per run (1.5% of `react`'s main thread under load). The timer stops at the first sweep that finds nothing.
 */
export class Backstops {
  private readonly runs = new Set<TrackedRun<unknown>>();
  private timer: NodeJS.Timeout | null = null;

  add(run: TrackedRun<unknown>): void {
    this.runs.add(run);
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  delete(run: TrackedRun<unknown>): void {
    this.runs.delete(run);
  }

  private sweep(): void {
    if (this.runs.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      return;
    }
    const now = performance.now();
    for (const run of this.runs) if (run.deadline <= now) run.check();
  }
}

/**
 * One task on its way through the pool, with its backstop (see `track` in pool.ts). A class rather than
 * closures: under tsx every named closure is renamed with `Object.defineProperty` each time it is made, three per
 * run here.
 */
export class TrackedRun<T> implements Tracked {
  readonly task: SingleTask;
  readonly promise: Promise<T>;
  private resolve!: (value: T) => void;
  private done = false;
  private released = false;
  /** When the backstop is next looked at (performance.now()). */
  deadline: number;

  constructor(
    task: SingleTask,
    private readonly slot: number,
    private readonly backstopMs: number,
    private readonly onAbort: () => T,
    private readonly tracking: RunTracking,
  ) {
    this.task = { ...task, slot };
    this.promise = new Promise<T>((settle) => {
      this.resolve = settle;
    });
    this.deadline = performance.now() + backstopMs;
    tracking.backstops.add(this as TrackedRun<unknown>);
  }

  answered(value: unknown): void {
    this.release();
    this.finish(value as T);
  }

  failed(): void {
    this.release();
    this.finish(this.onAbort());
  }

  private finish(value: T): void {
    if (this.done) return;
    this.done = true;
    this.tracking.backstops.delete(this as TrackedRun<unknown>);
    this.resolve(value);
  }

  /** Only once the worker answered for the task or died: nothing writes to the slot after that. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.tracking.slots.release(this.slot);
  }

  /** Called by the backstops once `deadline` has passed. */
  check(): void {
    const state = this.tracking.slots.state(this.slot);
    if (state === 'queued' && !this.tracking.slots.cancel(this.slot)) {
      this.check(); // the worker started it meanwhile: look again
      return;
    }
    if (state === 'cancelled' || state === 'queued') {
      this.finish(this.onAbort());
      return;
    }
    const remaining = this.backstopMs - this.tracking.slots.runningMs(this.slot);
    if (remaining > 0) {
      this.deadline = performance.now() + remaining;
      return;
    }
    this.tracking.terminateThread(state.threadId);
    this.finish(this.onAbort());
  }
}
