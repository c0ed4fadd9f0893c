import { beforeAll, describe, expect, it } from 'vitest';
import { errorOf, invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

// Not closed: terminating a worker after these attacks can make isolated-vm abort the process at teardown
// (see the runtime report); the fork's own exit reclaims the threads.
const runtime = startRuntime({ threads: 2, memoryLimitMb: 64 });
// Worker start-up (tsx compiling the worker) is not part of any request's budget.
beforeAll(() => Promise.all([1, 2, 3, 4].map(() => invoke(runtime, ECHO, { args: { n: 0 } }))));

const TIMEOUT_MS = 500;
const ECHO = 'module.exports = async (req) => ({ raw: req.args.n });';

/** Runs the attack while another tenant keeps calling; the other tenant must keep succeeding. */
async function underAttack(code: string, timeoutMs = TIMEOUT_MS) {
  const victim = newTenant();
  const started = performance.now();
  const attack = invoke(runtime, code, { timeoutMs }).then((outcome) => ({ outcome, ms: performance.now() - started }));
  const others: Promise<unknown>[] = [];
  for (let n = 0; n < 20; n++) {
    others.push(invoke(runtime, ECHO, { tenantId: victim, args: { n }, timeoutMs: 5_000 }).then(rawOf));
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(await Promise.all(others)).toEqual([...Array(20).keys()]);
  const { outcome, ms } = await attack;
  expect(ms).toBeLessThan(timeoutMs + 1_000);
  return errorOf(outcome);
}

describe('denial of service fails only the offending request, within timeout + 1 s', () => {
  it('sync infinite loop', async () => {
    expect(await underAttack('module.exports = async () => { while (true) {} }')).toMatchObject({
      code: 'REACTOR_TIMEOUT',
      status: 504,
      message: `Reactor timed out after ${TIMEOUT_MS} ms`,
    });
  });

  it('async loop (while (true) await null)', async () => {
    expect(await underAttack('module.exports = async () => { while (true) await null }')).toMatchObject({
      code: 'REACTOR_TIMEOUT',
    });
  });

  it('loop after awaiting a host callback', async () => {
    expect(
      await underAttack('module.exports = async () => { await new Promise((r) => setTimeout(r, 1)); while (true) {} }'),
    ).toMatchObject({ code: 'REACTOR_TIMEOUT' });
  });

  it('Atomics.wait is unavailable', async () => {
    const error = await underAttack(
      'module.exports = async () => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0) }',
    );
    expect(error).toMatchObject({ code: 'REACTOR_RUNTIME_ERROR', message: expect.stringMatching(/not defined/) });
  });

  it('heap bomb', async () => {
    const error = await underAttack(
      'module.exports = async () => { const a = []; while (true) a.push({ x: Math.random(), y: [1, 2, 3] }) }',
      10_000,
    );
    expect(error.code).toBe('REACTOR_RUNTIME_ERROR');
    expect(error.message).toMatch(/memory limit/);
  });

  it('ArrayBuffer bomb', async () => {
    const error = await underAttack(
      'module.exports = async () => { const a = []; while (true) a.push(new Uint8Array(16 * 1024 * 1024).fill(1)) }',
      10_000,
    );
    expect(error).toMatchObject({
      code: 'REACTOR_RUNTIME_ERROR',
      message: 'Reactor exceeded the memory limit of 64 MB',
    });
  });

  it('an ArrayBuffer bomb fails as the memory limit, and its isolate is not reused', async () => {
    // One thread, so every call meets the same worker's cache.
    const single = startRuntime({ threads: 1, memoryLimitMb: 64 });
    const tenantId = newTenant();
    const code = `let calls = 0;
      module.exports = async (req) => {
        calls++;
        if (req.args.bomb) { globalThis.kept = []; while (true) globalThis.kept.push(new Uint8Array(16 * 1024 * 1024)) }
        return { raw: calls };
      }`;
    expect(rawOf(await invoke(single, code, { tenantId }))).toBe(1);
    expect(rawOf(await invoke(single, code, { tenantId }))).toBe(2);
    // V8 throws the refused allocation inside the isolate as an ordinary RangeError, and the isolate, whose global
    // still holds everything, would otherwise serve the next call at its limit: it fails as the memory limit, and
    // the next call starts from a fresh isolate. (A formula that catches the RangeError itself keeps its isolate.)
    expect(errorOf(await invoke(single, code, { tenantId, args: { bomb: true } }))).toMatchObject({
      code: 'REACTOR_RUNTIME_ERROR',
      message: 'Reactor exceeded the memory limit of 64 MB',
    });
    expect(rawOf(await invoke(single, code, { tenantId }))).toBe(1);
    await single.close();
  });

  it('recovers: the same formula runs again after its isolate was rebuilt', async () => {
    const tenantId = newTenant();
    const code = 'module.exports = async (req) => { if (req.args.hang) { while (true) {} } return { raw: "ok" } }';
    expect(errorOf(await invoke(runtime, code, { tenantId, args: { hang: true }, timeoutMs: 200 })).code).toBe(
      'REACTOR_TIMEOUT',
    );
    expect(rawOf(await invoke(runtime, code, { tenantId }))).toBe('ok');
  });
});

/**
 * One tenant sends `loops` infinite loops at once (each its own formula, so its own isolate) while another tenant
 * keeps calling with a timeout shorter than the loops'. Returns the other tenant's answers and the loops' outcomes.
 */
async function loopsAgainstAnotherTenant(loops: number) {
  // Its own pool: the attack starts spare threads, which the other tests should not inherit.
  const pool = startRuntime({ threads: 2, memoryLimitMb: 64 });
  await Promise.all([1, 2, 3, 4].map(() => invoke(pool, ECHO, { args: { n: 0 } })));
  const attacker = newTenant();
  const victim = newTenant();
  const attacks = Array.from({ length: loops }, (_, n) =>
    invoke(pool, `module.exports = async () => { while (true) {} } // ${n}`, {
      tenantId: attacker,
      formulaId: `loop-${n}`,
      timeoutMs: ATTACK_TIMEOUT_MS,
    }),
  );
  const victims: Promise<{ raw: unknown; ms: number }>[] = [];
  for (let n = 0; n < 20; n++) {
    const sent = performance.now();
    victims.push(
      invoke(pool, ECHO, { tenantId: victim, args: { n }, timeoutMs: VICTIM_TIMEOUT_MS }).then((outcome) => ({
        raw: rawOf(outcome),
        ms: performance.now() - sent,
      })),
    );
    await new Promise((r) => setTimeout(r, 10));
  }
  return { answered: await Promise.all(victims), attacks: await Promise.all(attacks) };
}

const ATTACK_TIMEOUT_MS = 8_000;
const VICTIM_TIMEOUT_MS = 4_000;

describe("one tenant's infinite loops on every worker thread", () => {
  // Before the pool routed around stuck threads, the other tenant's calls waited for the loops' 8 s and failed at
  // their own 4 s; before the tenant gate, loops on the spare threads too did the same.
  it.each([
    ['as many loops as threads: the spare threads serve the other tenant', 2],
    ['three times as many: the tenant keeps its share of the threads and its other loops wait', 6],
  ])(
    "another tenant's requests still succeed, within their own shorter timeout (%s)",
    async (_, loops) => {
      const { answered, attacks } = await loopsAgainstAnotherTenant(loops);
      expect(answered.map((one) => one.raw)).toEqual([...Array(20).keys()]);
      expect(Math.max(...answered.map((one) => one.ms))).toBeLessThan(VICTIM_TIMEOUT_MS);
      // Loops held back in the tenant gate went with what was left of their time; their errors still name the
      // limit the caller set, not what was left of it.
      for (const attack of attacks) {
        expect(errorOf(attack)).toMatchObject({
          code: 'REACTOR_TIMEOUT',
          message: `Reactor timed out after ${ATTACK_TIMEOUT_MS} ms`,
        });
      }
    },
    20_000,
  );
});

describe('isolation', () => {
  it('two tenants running the same formula never share globals', async () => {
    const code =
      'module.exports = async (req) => { globalThis.seen = globalThis.seen || []; globalThis.seen.push(req.args.who); return { raw: globalThis.seen } }';
    const single = startRuntime({ threads: 1 });
    const [a, b] = [newTenant(), newTenant()];
    expect(rawOf(await invoke(single, code, { tenantId: a, args: { who: 'a' } }))).toEqual(['a']);
    expect(rawOf(await invoke(single, code, { tenantId: b, args: { who: 'b' } }))).toEqual(['b']);
    expect(rawOf(await invoke(single, code, { tenantId: a, args: { who: 'a2' } }))).toEqual(['a', 'a2']);
    await single.close();
  });

  it("a formula that mutates Object.prototype affects no other formula, not even the same tenant's", async () => {
    const single = startRuntime({ threads: 1 });
    const tenantId = newTenant();
    await invoke(
      single,
      'module.exports = async () => { Object.prototype.polluted = 1; JSON.stringify = () => "hijacked"; return {} }',
      { tenantId, formulaId: 'polluter' },
    );
    const clean = await invoke(
      single,
      'module.exports = async () => ({ raw: [({}).polluted === undefined, JSON.stringify({ a: 1 })] })',
      { tenantId, formulaId: 'other' },
    );
    expect(rawOf(clean)).toEqual([true, '{"a":1}']);
    await single.close();
  });
});
