import { afterAll, describe, expect, it } from 'vitest';
import { errorOf, invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

// One thread each: every formula isolate lives in a per-worker cache, so a module-level counter only says which
// isolate answered when all calls reach the same worker.
//
// `broken` and `small` are not closed: terminating a worker after a timeout or a memory-limit hit can make
// isolated-vm abort the process at teardown (see dos-isolation.test.ts); the fork's own exit reclaims the threads.
const broken = startRuntime({ threads: 1 });
const small = startRuntime({ threads: 1, memoryLimitMb: 16 });
const lru = startRuntime({ threads: 1, maxCachedFormulas: 2 });
afterAll(() => lru.close());

/** Counts its calls in module scope: the count restarts at 1 only in a newly built isolate. */
const COUNTER = `let calls = 0;
module.exports = async (req) => {
  calls++;
  if (req.args.loop) for (;;) {}
  if (req.args.bomb) { const a = []; for (;;) a.push({ x: Math.random(), y: [calls, 'x'.repeat(32)] }); }
  if (req.args.sleepMs) await new Promise((r) => setTimeout(r, req.args.sleepMs));
  return { raw: calls };
};`;
/** Another formula whose isolate must survive what happens to COUNTER's: the worker itself was not replaced. */
const BYSTANDER = 'let calls = 0; module.exports = async () => ({ raw: ++calls });';

describe('an isolate that failed is thrown away and rebuilt', () => {
  it('after a timeout the next call gets a fresh isolate, while other isolates of the worker are kept', async () => {
    const tenantId = newTenant();
    const call = (args: Record<string, unknown> = {}, timeoutMs = 10_000) =>
      invoke(broken, COUNTER, { tenantId, args, timeoutMs });
    expect(rawOf(await invoke(broken, BYSTANDER, { tenantId, formulaId: 'bystander' }))).toBe(1);
    expect(rawOf(await call())).toBe(1);
    expect(rawOf(await call())).toBe(2);

    const timedOut = errorOf(await call({ loop: true }, 300));
    expect(timedOut).toMatchObject({ code: 'REACTOR_TIMEOUT', status: 504, message: 'Reactor timed out after 300 ms' });

    // 1, not 4: the isolate that was interrupted mid-loop is never reused.
    expect(rawOf(await call())).toBe(1);
    expect(rawOf(await call())).toBe(2);
    // The worker was not restarted to get there (that would have reset this one too).
    expect(rawOf(await invoke(broken, BYSTANDER, { tenantId, formulaId: 'bystander' }))).toBe(2);
  });

  it('after the memory limit the call fails with REACTOR_RUNTIME_ERROR and the next one gets a fresh isolate', async () => {
    const tenantId = newTenant();
    const call = (args: Record<string, unknown> = {}) => invoke(small, COUNTER, { tenantId, args, timeoutMs: 10_000 });
    expect(rawOf(await invoke(small, BYSTANDER, { tenantId, formulaId: 'bystander' }))).toBe(1);
    expect(rawOf(await call())).toBe(1);
    expect(rawOf(await call())).toBe(2);

    const bombed = errorOf(await call({ bomb: true }));
    expect(bombed).toMatchObject({ code: 'REACTOR_RUNTIME_ERROR', status: 500 });
    expect(bombed.message).toBe('Reactor exceeded the memory limit of 16 MB');

    expect(rawOf(await call())).toBe(1);
    expect(rawOf(await call())).toBe(2);
    expect(rawOf(await invoke(small, BYSTANDER, { tenantId, formulaId: 'bystander' }))).toBe(2);
  });
});

describe('the compiled-formula cache is LRU-capped (maxCachedFormulas)', () => {
  it('with a cap of 2, a third formula evicts the least recently used one and keeps the recently used one', async () => {
    const tenantId = newTenant();
    const call = (formulaId: string) => invoke(lru, BYSTANDER, { tenantId, formulaId }).then(rawOf);
    expect(await call('a')).toBe(1);
    expect(await call('b')).toBe(1);
    // `a` is now the most recently used; `b` the least.
    expect(await call('a')).toBe(2);
    expect(await call('c')).toBe(1);
    // Kept: its module state carries on.
    expect(await call('a')).toBe(3);
    // Evicted by `c`: loaded again into a new isolate. (Loading it evicts `c`, now the least recently used.)
    expect(await call('b')).toBe(1);
    expect(await call('b')).toBe(2);
    expect(await call('a')).toBe(4);
    expect(await call('c')).toBe(1);
  });

  it('keys the cache by code hash too: a new version of a formula is a new isolate, not the old module', async () => {
    const tenantId = newTenant();
    const v2 = `${BYSTANDER}\n// v2`;
    expect(rawOf(await invoke(lru, BYSTANDER, { tenantId, formulaId: 'f' }))).toBe(1);
    expect(rawOf(await invoke(lru, BYSTANDER, { tenantId, formulaId: 'f' }))).toBe(2);
    expect(rawOf(await invoke(lru, v2, { tenantId, formulaId: 'f' }))).toBe(1);
  });
});

describe('timers against the call deadline', () => {
  it('a setTimeout past the deadline ends the call with REACTOR_TIMEOUT at the deadline, and the worker carries on', async () => {
    const tenantId = newTenant();
    expect(rawOf(await invoke(broken, BYSTANDER, { tenantId, formulaId: 'bystander' }))).toBe(1);
    // Warm: the isolate for COUNTER exists, so the measured time is the wait, not a first load.
    expect(rawOf(await invoke(broken, COUNTER, { tenantId }))).toBe(1);

    const started = performance.now();
    const outcome = await invoke(broken, COUNTER, { tenantId, args: { sleepMs: 60_000 }, timeoutMs: 400 });
    const elapsedMs = performance.now() - started;
    expect(errorOf(outcome)).toMatchObject({ code: 'REACTOR_TIMEOUT', status: 504 });
    expect(elapsedMs).toBeGreaterThanOrEqual(350);
    // At the deadline, not when the 60 s timer would have fired (generous: the machine may be busy).
    expect(elapsedMs).toBeLessThan(2_500);

    expect(rawOf(await invoke(broken, COUNTER, { tenantId }))).toBe(1);
    // Answered by the worker itself: had the pool's backstop (timeout + 1 s) answered, it would have terminated the
    // worker, and this formula's count would have started again.
    expect(rawOf(await invoke(broken, BYSTANDER, { tenantId, formulaId: 'bystander' }))).toBe(2);
  });

  it('a timer cleared with clearTimeout never fires, while one left alone does', async () => {
    const code = `let cleared = 0; let kept = 0;
module.exports = async () => {
  const t = setTimeout(() => { cleared++; }, 10);
  setTimeout(() => { kept++; }, 10);
  clearTimeout(t);
  await new Promise((r) => setTimeout(r, 150));
  return { raw: { cleared, kept } };
};`;
    const tenantId = newTenant();
    expect(rawOf(await invoke(broken, code, { tenantId }))).toEqual({ cleared: 0, kept: 1 });
    // Same isolate again: the cleared timer has not fired since either.
    expect(rawOf(await invoke(broken, code, { tenantId }))).toEqual({ cleared: 0, kept: 2 });
  });
});
