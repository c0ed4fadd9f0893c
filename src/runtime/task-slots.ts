/**
 * Which worker thread is running which task, shared between the pool and its workers without messages, so the
 * pool's backstop can tell a task still queued at a busy worker (cancel it) from one that a worker has been
 * running for too long (terminate that worker). Per slot: [owner, startedMs]. Owner 0 is queued, -1 cancelled,
 * anything else the threadId of the worker running it (worker threadIds start at 1). startedMs counts from a
 * shared epoch and wraps at 2^32; only differences are used.
 */
const QUEUED = 0;
const CANCELLED = -1;
const DEFAULT_SLOTS = 1 << 15;

export type SlotState = 'queued' | 'cancelled' | { threadId: number };

export interface SharedSlots {
  buffer: SharedArrayBuffer;
  epoch: number;
}

function nowMs(epoch: number): number {
  return (Date.now() - epoch) | 0;
}

/** Pool side. */
export class TaskSlots {
  readonly shared: SharedSlots;
  private readonly cells: Int32Array;
  private readonly free: number[];

  constructor(size = DEFAULT_SLOTS) {
    this.shared = { buffer: new SharedArrayBuffer(size * 2 * Int32Array.BYTES_PER_ELEMENT), epoch: Date.now() };
    this.cells = new Int32Array(this.shared.buffer);
    this.free = Array.from({ length: size }, (_, i) => size - 1 - i);
  }

  acquire(): number | undefined {
    return this.free.pop();
  }

  /** Only once the worker answered for the task or died: nothing writes to the slot after that. */
  release(slot: number): void {
    Atomics.store(this.cells, slot * 2, QUEUED);
    this.free.push(slot);
  }

  state(slot: number): SlotState {
    const owner = Atomics.load(this.cells, slot * 2);
    return owner === QUEUED ? 'queued' : owner === CANCELLED ? 'cancelled' : { threadId: owner };
  }

  /** True if the task had not started; the worker then skips it. */
  cancel(slot: number): boolean {
    return Atomics.compareExchange(this.cells, slot * 2, QUEUED, CANCELLED) === QUEUED;
  }

  runningMs(slot: number): number {
    return (nowMs(this.shared.epoch) - Atomics.load(this.cells, slot * 2 + 1)) | 0;
  }
}

/** Worker side: claims the slot for this thread, or returns false if the pool cancelled the task. */
export function startTask(shared: SharedSlots, cells: Int32Array, slot: number, threadId: number): boolean {
  // Start time first: the pool reads the owner, then the start time.
  Atomics.store(cells, slot * 2 + 1, nowMs(shared.epoch));
  return Atomics.compareExchange(cells, slot * 2, QUEUED, threadId) === QUEUED;
}
