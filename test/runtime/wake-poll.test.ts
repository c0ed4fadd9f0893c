import { afterAll, describe, expect, it } from 'vitest';
import { AdaptivePoll, createWakeCells, PoolWakeCells, WorkerWakeCells } from '../../src/runtime/wake-poll.ts';
import { invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

/** Both sides on one buffer, as the pool and its workers share it. */
function cells(spinMicros = 200) {
  const buffer = createWakeCells();
  return { pool: new PoolWakeCells(buffer, spinMicros), worker: new WorkerWakeCells(buffer) };
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = fn();
  return { value, ms: performance.now() - started };
}

describe('wake cells: who may poll, and when a poll ends', () => {
  it('nothing polls until two lone runs in a row made the pool quiet, and a batch ends that', () => {
    const { pool, worker } = cells();
    // Not quiet: a poll that would run a whole second returns at once.
    expect(timed(() => worker.awaitDispatch(worker.dispatches(), 1_000_000)).ms).toBeLessThan(500);
    pool.dispatched(true);
    expect(timed(() => worker.awaitDispatch(worker.dispatches(), 1_000_000)).ms).toBeLessThan(500);

    pool.dispatched(true);
    // Quiet: a dispatch after the one seen ends the poll at once; none polls for the window, then gives up.
    expect(worker.awaitDispatch(worker.dispatches() - 1, 1_000_000)).toBe(true);
    const givenUp = timed(() => worker.awaitDispatch(worker.dispatches(), 2_000));
    expect(givenUp.value).toBe(false);
    expect(givenUp.ms).toBeGreaterThanOrEqual(2);

    pool.dispatched(false);
    expect(timed(() => worker.awaitDispatch(worker.dispatches(), 1_000_000)).ms).toBeLessThan(500);
  });

  it('spinMicros 0 turns polling off: the pool never becomes quiet', () => {
    const { pool, worker } = cells(0);
    for (let i = 0; i < 3; i++) pool.dispatched(true);
    expect(timed(() => worker.awaitDispatch(worker.dispatches(), 1_000_000)).ms).toBeLessThan(500);
    expect(pool.awaitAnswer(pool.answers())).toBe(false);
  });

  it("the pool's poll ends with a worker's answer, or after spinMicros without one", () => {
    const { pool, worker } = cells(2_000);
    pool.dispatched(true);
    pool.dispatched(true);
    const seen = pool.answers();
    worker.answered();
    expect(pool.awaitAnswer(seen)).toBe(true);
    const none = timed(() => pool.awaitAnswer(pool.answers()));
    expect(none.value).toBe(false);
    expect(none.ms).toBeGreaterThanOrEqual(2);
  });
});

describe("a worker's poll after it answered adapts its window", () => {
  function quietPoll(maxMicros: number) {
    const { pool, worker } = cells(maxMicros);
    pool.dispatched(true);
    pool.dispatched(true);
    return { pool, worker, poll: new AdaptivePoll(worker, maxMicros) };
  }

  // "Soon" is within maxMicros of a poll giving up: 20 ms here, so that a busy test machine cannot make it late.
  const MAX = 20_000;

  it('halves after a poll that found nothing, doubles when the next task came soon after it gave up', () => {
    const { worker, poll } = quietPoll(MAX);
    expect(poll.window).toBe(MAX / 2);
    poll.poll(worker.dispatches());
    expect(poll.window).toBe(MAX / 4);
    poll.taskArrived(); // at once: a longer poll would have caught it
    expect(poll.window).toBe(MAX / 2);
    // A dispatch already there: caught, and the window stays.
    poll.poll(worker.dispatches() - 1);
    poll.taskArrived();
    expect(poll.window).toBe(MAX / 2);
  });

  it('shrinks to nothing when tasks come long after it, and grows back when they come close again', () => {
    const { worker, poll } = quietPoll(MAX);
    const pause = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    // 10 ms halved ten times is under the 10 us minimum.
    for (let i = 0; i < 10; i++) {
      poll.poll(worker.dispatches());
      pause(25); // the next task 25 ms later: beyond the 20 ms a poll may last
      poll.taskArrived();
    }
    expect(poll.window).toBeLessThan(AdaptivePoll.MIN_MICROS);
    // Off: it returns at once (a poll of the full 20 ms window would fail this), and still counts as one that gave
    // up, so a task soon after it opens the window again.
    expect(timed(() => poll.poll(worker.dispatches())).ms).toBeLessThan(10);
    poll.taskArrived();
    expect(poll.window).toBe(AdaptivePoll.MIN_MICROS * 2);
  });
});

describe('the pool with polling on and off', () => {
  const polling = startRuntime({ threads: 1, spinMicros: 200 });
  const sleeping = startRuntime({ threads: 1, spinMicros: 0 });
  afterAll(() => Promise.all([polling.close(), sleeping.close()]));
  const ECHO = 'module.exports = async (req) => ({ raw: req.args.n })';
  const SLOW =
    'module.exports = async (req) => { await new Promise((r) => setTimeout(r, 30)); return { raw: req.args.n } }';

  for (const [name, runtime] of [
    ['polling', polling],
    ['sleeping', sleeping],
  ] as const) {
    it(`${name}: lone runs back to back, slower than a poll, and then together all get their own answers`, async () => {
      const tenantId = newTenant();
      for (let n = 0; n < 50; n++) expect(rawOf(await invoke(runtime, ECHO, { tenantId, args: { n } }))).toBe(n);
      // Longer than any poll: the pool's poll gives up and the answer still arrives.
      for (let n = 0; n < 3; n++) expect(rawOf(await invoke(runtime, SLOW, { tenantId, args: { n } }))).toBe(n);
      const together = await Promise.all(
        Array.from({ length: 40 }, (_, n) => invoke(runtime, n % 2 ? SLOW : ECHO, { tenantId, args: { n } })),
      );
      expect(together.map(rawOf)).toEqual(Array.from({ length: 40 }, (_, n) => n));
    });
  }
});
