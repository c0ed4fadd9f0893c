import { STUCK_AFTER_MS } from './stuck-threads.ts';
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
  /** Ends the thread the run in `slot` is on, unless another run's call still within its time holds it (pool.ts). */
  terminateThread(threadId: number, slot: number): void;
  /** Submits a task again, as a new task of its own (see `TrackedRun.reroute`). */
  resubmit<T>(task: SingleTask, backstopMs: number, onAbort: () => T): Promise<T>;
  /** The run in each task slot, so the pool can tell whose call a stuck thread is in (tenant-gate.ts). */
  bySlot: (TrackedRun<unknown> | undefined)[];
}

/** What the sweep asks the pool besides the backstops. */
export interface SweepHooks {
  /** Brings the tenant gate up to date (tenant-gate.ts); true if some worker thread is stuck now. */
  lookAtStuckThreads(): boolean;
  /** Whether runs wait in the tenant gate: the sweep keeps going for them. */
  holding(): boolean;
}

const NO_HOOKS: SweepHooks = { lookAtStuckThreads: () => false, holding: () => false };

/** The task with its time limit cut by the time it already waited in the pool: its answer still comes in time. */
export function withTimeLeft(task: SingleTask, waitedMs: number): SingleTask {
  if (task.kind !== 'run') return task;
  const { slot: _previous, ...rest } = task;
  const timeoutMs = Math.max(1, Math.floor(task.input.timeoutMs - waitedMs));
  return {
    ...rest,
    input: { ...task.input, timeoutMs, fullTimeoutMs: task.input.fullTimeoutMs ?? task.input.timeoutMs },
  };
}

/**
 * A run still queued this long while a worker thread is stuck is most likely queued behind that thread's call.
 * Twice the time that makes a thread stuck, so the pool has stopped sending the stuck thread new tasks by then.
 */
const REROUTE_AFTER_MS = 2 * STUCK_AFTER_MS;

/** How often the backstops are looked at; a backstop fires up to this much after its time (it has 1 s of grace). */
const SWEEP_MS = 100;

/**
 * The backstops of every run in flight, looked at by one interval timer instead of a setTimeout and clearTimeout
 * per run (1.5% of `react`'s main thread under load). The timer stops at the first sweep that finds nothing.
 *
 * The timer is what keeps the process alive while runs are in flight or held in the tenant gate: piscina unrefs a
 * worker once its task has returned, which a formula's task does at once when the formula awaits (worker.ts answers
 * later, on the answer channel), and a held run has no worker at all. Unref'd, a script awaiting such a run exited
 * with code 13 (an unsettled top-level await).
 */
export class Backstops {
  private readonly runs = new Set<TrackedRun<unknown>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly hooks: SweepHooks = NO_HOOKS) {}

  add(run: TrackedRun<unknown>): void {
    this.runs.add(run);
    this.start();
  }

  /** Also for runs held by the tenant gate, which have no backstop yet. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
  }

  delete(run: TrackedRun<unknown>): void {
    this.runs.delete(run);
  }

  private sweep(): void {
    if (this.runs.size === 0 && !this.hooks.holding() && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      return;
    }
    const now = performance.now();
    // The gate first: a run of a tenant over its limit is then held rather than moved to a spare thread.
    const rerouteBefore = this.hooks.lookAtStuckThreads() ? now - REROUTE_AFTER_MS : Number.NEGATIVE_INFINITY;
    for (const run of this.runs) {
      if (run.deadline <= now) run.check();
      else if (run.submitted <= rerouteBefore) run.reroute();
    }
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
  /** Moved to another worker: this task's own answer (a cancelled task's) only frees its slot. */
  private rerouted = false;
  /** When the backstop is next looked at (performance.now()). */
  deadline: number;
  readonly submitted = performance.now();

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
    this.deadline = this.submitted + backstopMs;
    tracking.bySlot[slot] = this as TrackedRun<unknown>;
    tracking.backstops.add(this as TrackedRun<unknown>);
  }

  answered(value: unknown): void {
    this.release();
    if (!this.rerouted) this.finish(value as T);
  }

  failed(): void {
    this.release();
    if (!this.rerouted) this.finish(this.onAbort());
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
    if (this.tracking.bySlot[this.slot] === (this as TrackedRun<unknown>)) this.tracking.bySlot[this.slot] = undefined;
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
    this.tracking.terminateThread(state.threadId, this.slot);
    this.finish(this.onAbort());
  }

  /**
   * Called by the backstops while a worker thread is stuck: a formula run not started yet is cancelled where it
   * waits and submitted again, so the pool's balancer sends it to a thread that is not stuck (pool.ts). It keeps
   * what is left of its time: the answer comes within the time it was first given.
   */
  reroute(): void {
    const { task } = this;
    if (this.done || this.rerouted || task.kind !== 'run') return;
    if (this.tracking.slots.state(this.slot) !== 'queued' || !this.tracking.slots.cancel(this.slot)) return;
    this.rerouted = true;
    this.tracking.backstops.delete(this as TrackedRun<unknown>);
    this.tracking
      .resubmit(
        withTimeLeft(task, performance.now() - this.submitted),
        Math.max(1, this.deadline - performance.now()),
        this.onAbort,
      )
      .then((value) => this.finish(value));
  }
}
