import { describe, expect, it } from 'vitest';
import { createStuckCells, STUCK_AFTER_MS, StuckThreads, SyncCallMarker } from '../../src/runtime/stuck-threads.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('stuck threads', () => {
  it('a thread is stuck only while one synchronous call has lasted longer than STUCK_AFTER_MS', async () => {
    const cells = createStuckCells();
    const pool = new StuckThreads(cells);
    const worker = new SyncCallMarker(cells, 7);
    const other = new SyncCallMarker(cells, 8);
    worker.slot = 12;
    worker.enter();
    expect(pool.isStuck(7)).toBe(false);
    await sleep(STUCK_AFTER_MS + 30);
    expect(pool.isStuck(7)).toBe(true);
    expect(pool.isStuck(8)).toBe(false);
    expect(pool.stuckSlots()).toEqual([12]);
    worker.leave();
    expect(pool.isStuck(7)).toBe(false);
    expect(pool.stuckSlots()).toEqual([]);
    // A short call after a long pause: the time counts from the call's start, not from the last one's.
    worker.enter();
    expect(pool.isStuck(7)).toBe(false);
    worker.leave();
    other.leave();
  });

  it('an unknown thread is never stuck, and a forgotten entry can be claimed by a new thread', async () => {
    const cells = createStuckCells();
    const pool = new StuckThreads(cells);
    expect(pool.isStuck(99)).toBe(false);
    const gone = new SyncCallMarker(cells, 5);
    gone.enter();
    await sleep(STUCK_AFTER_MS + 30);
    expect(pool.isStuck(5)).toBe(true);
    // The worker was terminated mid-call: its entry must not keep the pool thinking something is stuck.
    // A call without a task slot still counts as stuck (-1).
    expect(pool.stuckSlots()).toEqual([-1]);
    pool.forget(5);
    expect(pool.isStuck(5)).toBe(false);
    expect(pool.stuckSlots()).toEqual([]);
    const next = new SyncCallMarker(cells, 6);
    next.enter();
    await sleep(STUCK_AFTER_MS + 30);
    expect(pool.isStuck(6)).toBe(true);
    next.leave();
  });
});
