/**
 * Which worker threads are inside one long synchronous formula call, shared between the pool and its workers
 * without messages. A formula call runs on its worker's thread (`applySync`) until it returns or its timeout (up to
 * 30 s for `react`) stops it, and everything piscina queued on that worker waits behind it. So that a tenant's
 * infinite loops hold up only its own requests, the pool sends no new task to a stuck thread, starts spare threads
 * when every thread is stuck, and moves runs still queued at a stuck thread elsewhere (pool.ts, tracked-run.ts).
 *
 * Per entry: [threadId, inSyncCall, sinceMs, slot]. threadId 0 is a free entry; sinceMs counts from a shared epoch
 * and wraps at 2^32 (only differences are used); slot is the call's task slot (task-slots.ts), -1 for none, which
 * tells the pool whose call it is (tenant-gate.ts).
 */
const ENTRIES = 64;
const THREAD = 0;
const IN_CALL = 1;
const SINCE = 2;
const SLOT = 3;
const WIDTH = 4;

/** A synchronous call longer than this makes its thread stuck: 1,000 times a trivial formula's run. */
export const STUCK_AFTER_MS = 50;

export interface StuckCells {
  buffer: SharedArrayBuffer;
  epoch: number;
}

function nowMs(epoch: number): number {
  return (Date.now() - epoch) | 0;
}

export function createStuckCells(): StuckCells {
  return { buffer: new SharedArrayBuffer(ENTRIES * WIDTH * Int32Array.BYTES_PER_ELEMENT), epoch: Date.now() };
}

/** Pool side. */
export class StuckThreads {
  private readonly cells: Int32Array;
  /** threadId → entry, once found: the balancer asks for every worker on every dispatch. */
  private readonly entries = new Map<number, number>();

  constructor(private readonly shared: StuckCells) {
    this.cells = new Int32Array(shared.buffer);
  }

  /** Whether the thread has been inside one synchronous formula call for longer than STUCK_AFTER_MS. */
  isStuck(threadId: number): boolean {
    const entry = this.entryOf(threadId);
    return entry >= 0 && this.stuckAt(entry, nowMs(this.shared.epoch));
  }

  /** The task slot of each call stuck now (-1 for a call without one, such as a task sent with an AbortSignal). */
  stuckSlots(): number[] {
    const now = nowMs(this.shared.epoch);
    const slots: number[] = [];
    for (let entry = 0; entry < ENTRIES; entry++) {
      if (Atomics.load(this.cells, entry * WIDTH + THREAD) === 0 || !this.stuckAt(entry, now)) continue;
      slots.push(Atomics.load(this.cells, entry * WIDTH + SLOT));
    }
    return slots;
  }

  /** The task slot of the synchronous formula call the thread is inside now (-1 for none known), else undefined. */
  callSlot(threadId: number): number | undefined {
    const entry = this.entryOf(threadId);
    if (entry < 0 || Atomics.load(this.cells, entry * WIDTH + IN_CALL) === 0) return undefined;
    return Atomics.load(this.cells, entry * WIDTH + SLOT);
  }

  /** A thread that exited frees its entry (a terminated worker cannot do it itself). */
  forget(threadId: number): void {
    const entry = this.entryOf(threadId);
    if (entry < 0) return;
    this.entries.delete(threadId);
    Atomics.store(this.cells, entry * WIDTH + IN_CALL, 0);
    Atomics.store(this.cells, entry * WIDTH + THREAD, 0);
  }

  private stuckAt(entry: number, now: number): boolean {
    if (Atomics.load(this.cells, entry * WIDTH + IN_CALL) === 0) return false;
    return ((now - Atomics.load(this.cells, entry * WIDTH + SINCE)) | 0) > STUCK_AFTER_MS;
  }

  private entryOf(threadId: number): number {
    const known = this.entries.get(threadId);
    if (known !== undefined) return known;
    for (let entry = 0; entry < ENTRIES; entry++) {
      if (Atomics.load(this.cells, entry * WIDTH + THREAD) === threadId) {
        this.entries.set(threadId, entry);
        return entry;
      }
    }
    return -1;
  }
}

/**
 * Worker side: marks the thread as inside a synchronous formula call and out again. A few atomic stores and a
 * `Date.now()`, so it costs nothing next to a call. Without a free entry (more threads than ENTRIES) the thread is never seen as stuck: the
 * pool then behaves as it did before this existed.
 */
export class SyncCallMarker {
  private readonly cells: Int32Array;
  private readonly base: number;
  /** The slot of the task whose synchronous part runs now; the worker sets it before each task. */
  slot = -1;

  constructor(
    private readonly shared: StuckCells,
    threadId: number,
  ) {
    this.cells = new Int32Array(shared.buffer);
    let claimed = -1;
    for (let entry = 0; entry < ENTRIES && claimed < 0; entry++) {
      if (Atomics.compareExchange(this.cells, entry * WIDTH + THREAD, 0, threadId) === 0) claimed = entry;
    }
    this.base = claimed * WIDTH;
  }

  enter(): void {
    if (this.base < 0) return;
    // Start time first: the pool reads the flag, then the start time.
    Atomics.store(this.cells, this.base + SINCE, nowMs(this.shared.epoch));
    Atomics.store(this.cells, this.base + SLOT, this.slot);
    Atomics.store(this.cells, this.base + IN_CALL, 1);
  }

  leave(): void {
    if (this.base < 0) return;
    Atomics.store(this.cells, this.base + IN_CALL, 0);
  }
}
