import { afterAll, describe, expect, it } from 'vitest';
import { errorOf, invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

// One worker, so every run submitted together lands in one batch (src/runtime/pool.ts, dispatchBatch).
const runtime = startRuntime({ threads: 1 });
afterAll(() => runtime.close());

const QUICK = 'module.exports = async (req) => ({ raw: req.args.n })';
const WAITS = 'module.exports = async () => { await new Promise((r) => setTimeout(r, 1500)); return { raw: "slow" } }';

describe('runs submitted together travel as one batch', () => {
  it('each answers as soon as it is ready: a slow run does not hold up the quick ones sent with it', async () => {
    const tenantId = newTenant();
    await Promise.all([invoke(runtime, QUICK, { tenantId, args: { n: 0 } }), invoke(runtime, WAITS, { tenantId })]);
    const started = performance.now();
    const answeredAt: number[] = [];
    // A run already in flight makes the ones after it wait a turn of the loop and go together: [slow, 6 quick].
    const first = invoke(runtime, QUICK, { tenantId, args: { n: -1 } });
    const slow = invoke(runtime, WAITS, { tenantId });
    const quick = Array.from({ length: 6 }, (_, n) =>
      invoke(runtime, QUICK, { tenantId, args: { n } }).then((outcome) => {
        answeredAt.push(performance.now() - started);
        return rawOf(outcome);
      }),
    );
    expect(await Promise.all(quick)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(rawOf(await first)).toBe(-1);
    expect(Math.max(...answeredAt)).toBeLessThan(1_000);
    expect(rawOf(await slow)).toBe('slow');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_400);
  });

  it('a run queued behind a busy batch-mate is moved to another thread and answered long before the busy one ends', async () => {
    const busy =
      'module.exports = async () => { const end = Date.now() + 2500; while (Date.now() < end) {} return { raw: "busy done" } }';
    // Something in flight first, so the next runs are queued and sent together.
    const warm = invoke(runtime, QUICK, { args: { n: 1 } });
    const started = performance.now();
    const busyCall = invoke(runtime, busy, { timeoutMs: 5_000 });
    let queuedAfter = 0;
    const queued = invoke(runtime, QUICK, { timeoutMs: 2_000, args: { n: 2 } }).then((outcome) => {
      queuedAfter = performance.now() - started;
      return outcome;
    });
    // The pool saw the only thread stuck in the busy run, cancelled the queued run there and sent it to a spare
    // thread (stuck-threads.ts): answered, and not after the busy run's 2.5 s.
    expect(rawOf(await queued)).toBe(2);
    expect(queuedAfter).toBeLessThan(2_000);
    expect(rawOf(await warm)).toBe(1);
    expect(rawOf(await busyCall)).toBe('busy done');
    expect(rawOf(await invoke(runtime, QUICK, { args: { n: 3 } }))).toBe(3);
  });

  it('many concurrent runs of many tenants all get their own answers', async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, n) => invoke(runtime, QUICK, { tenantId: `batch-${n % 7}`, args: { n } })),
    );
    expect(outcomes.map(rawOf)).toEqual(Array.from({ length: 200 }, (_, n) => n));
  });
});
