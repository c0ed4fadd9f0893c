/**
 * Brief polling, while the pool is quiet, where a message is due within microseconds, instead of letting the thread
 * sleep until it arrives.
 *
 * Why: on a VM whose idle vCPUs halt at once (this Firecracker VM: cpuidle haltpoll with guest_halt_poll_ns=0),
 * waking a thread that sleeps on another vCPU costs about 30 us per direction (a halt exit, an interrupt, the vCPU
 * scheduled again on the host). A bare worker_threads ping-pong measured 62-64 us per round trip, 3.7 us when both
 * sides poll (BENCHMARKS.md, ninth session). The guest kernel's haltpoll exists for this but is off there, and a
 * gateway cannot turn it on. So:
 * - the pool, after handing a lone run to an idle worker, polls for its answer;
 * - a worker that just answered polls for the next dispatch, for a window that adapts (`AdaptivePoll`): back-to-back
 *   callers keep it, callers whose next run comes later shrink it to nothing.
 * Each poll ends as soon as its message is on its way, after `spinMicros` at most (0 turns polling off), and only
 * while the pool is quiet: its last two dispatches were lone runs. Under load runs go in batches and nothing polls;
 * polling there took a core's share from the threads with work (10% of `react`'s throughput at 50 connections).
 *
 * The cells carry no data: the messages still travel through piscina. DISPATCHED counts the tasks the pool posted,
 * ANSWERED the answers workers posted, QUIET says whether polls may happen. A poll only keeps its thread's vCPU
 * running until the message's own wake-up (an eventfd write) finds it awake.
 */
const DISPATCHED = 0;
const ANSWERED = 1;
const QUIET = 2;
const CELLS = 3;

export function createWakeCells(): SharedArrayBuffer {
  return new SharedArrayBuffer(CELLS * Int32Array.BYTES_PER_ELEMENT);
}

/** Polls until `cells[index]` is no longer `seen`, for `micros` at most. True if it changed. */
function pollUntilChanged(cells: Int32Array, index: number, seen: number, micros: number): boolean {
  if (micros <= 0) return Atomics.load(cells, index) !== seen;
  const deadline = performance.now() + micros / 1000;
  while (Atomics.load(cells, index) === seen) {
    if (performance.now() >= deadline) return false;
  }
  return true;
}

/** Pool side. */
export class PoolWakeCells {
  private readonly cells: Int32Array;
  private lastWasLone = false;
  private quiet = false;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly spinMicros: number,
  ) {
    this.cells = new Int32Array(buffer);
  }

  /** The number of answers posted so far: read before dispatching a run whose answer `awaitAnswer` polls for. */
  answers(): number {
    return Atomics.load(this.cells, ANSWERED);
  }

  /**
   * After piscina posted a task; `lone`: a run with nothing else in flight. Ends the polls of workers waiting for a
   * dispatch, and keeps QUIET: set by a second lone run in a row, cleared by anything else (a batch, a check).
   */
  dispatched(lone: boolean): void {
    const quiet = lone && this.lastWasLone && this.spinMicros > 0;
    this.lastWasLone = lone;
    if (quiet !== this.quiet) {
      this.quiet = quiet;
      Atomics.store(this.cells, QUIET, quiet ? 1 : 0);
    }
    Atomics.add(this.cells, DISPATCHED, 1);
  }

  /** While the pool is quiet: polls until a worker posted an answer after `seen`. True if one did. */
  awaitAnswer(seen: number): boolean {
    return this.quiet && pollUntilChanged(this.cells, ANSWERED, seen, this.spinMicros);
  }
}

/** Worker side. */
export class WorkerWakeCells {
  private readonly cells: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
  }

  dispatches(): number {
    return Atomics.load(this.cells, DISPATCHED);
  }

  /** Called once piscina posted this worker's answer (the pool may be polling for it). */
  answered(): void {
    Atomics.add(this.cells, ANSWERED, 1);
  }

  /**
   * While the pool is quiet: polls for a dispatch after `seen`, any worker's (one for another worker only ends the
   * poll early). True if one came.
   */
  awaitDispatch(seen: number, micros: number): boolean {
    return Atomics.load(this.cells, QUIET) === 1 && pollUntilChanged(this.cells, DISPATCHED, seen, micros);
  }
}

/**
 * A worker's poll for the next dispatch after it answered, with a window that adapts as the kernel's haltpoll does:
 * halved after each poll that found nothing, doubled when a task arrives within `maxMicros` of a poll that gave up
 * (a longer poll would have caught it). Back-to-back callers (the next call follows the answer within tens of
 * microseconds) keep a window. At one `react` at a time the next run comes hundreds of microseconds later: the
 * window shrinks to nothing and costs nothing (6 polls caught of 5,374 before it adapted).
 */
export class AdaptivePoll {
  static readonly MIN_MICROS = 10;
  private windowMicros: number;
  private gaveUpAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly wake: WorkerWakeCells,
    private readonly maxMicros: number,
  ) {
    this.windowMicros = maxMicros / 2;
  }

  get window(): number {
    return this.windowMicros;
  }

  /** After this worker answered, when it has nothing else running. */
  poll(dispatchesSeen: number): void {
    // A window shrunk below the minimum counts as a poll that gave up at once, so that it can grow again.
    if (this.windowMicros >= AdaptivePoll.MIN_MICROS) {
      if (this.wake.awaitDispatch(dispatchesSeen, this.windowMicros)) return;
      this.windowMicros /= 2;
    }
    this.gaveUpAt = performance.now();
  }

  /** When a task arrives. */
  taskArrived(): void {
    if (this.gaveUpAt === Number.NEGATIVE_INFINITY) return;
    if ((performance.now() - this.gaveUpAt) * 1000 < this.maxMicros) {
      this.windowMicros = Math.min(this.maxMicros, Math.max(this.windowMicros * 2, AdaptivePoll.MIN_MICROS * 2));
    }
    this.gaveUpAt = Number.NEGATIVE_INFINITY;
  }
}
