import { afterAll, describe, expect, it } from 'vitest';
import { errorOf, invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

// Formula code may replace any built-in before the runtime's own code uses it again: at load, in a call's start, in
// the delivery of a host answer. Each case once made an entry point into the isolate throw a value whose getter
// never returned, which froze the thread that read it, or chained calls into the isolate after the run had ended.
// One thread, so that every run lands on the same isolates (and a frozen thread would stall the rest).
const runtime = startRuntime({ threads: 1 });
afterAll(() => runtime.close());

const UNREADABLE_THROW = '{ get message() { for (;;) {} } }';

describe('a formula that breaks built-ins the runtime uses', () => {
  it('at load: a toJSON getter on Object.prototype that throws an unreadable value', async () => {
    const code = `Object.defineProperty(Object.prototype, 'toJSON', { get() { throw ${UNREADABLE_THROW}; } });
      module.exports = 5;`;
    expect(await runtime.checkCode(code)).toEqual({
      ok: false,
      reason: 'invalid',
      message: 'Reactor code must export a function: module.exports = async function (req) { ... }',
    });
    expect(await runtime.checkCode('module.exports = async () => ({});')).toMatchObject({ ok: true });
  });

  it("in a call's start: Object.assign and Promise[Symbol.species] replaced, so its answer is built without them", async () => {
    const code = `module.exports = async () => {
      Object.assign = () => { throw ${UNREADABLE_THROW}; };
      Object.defineProperty(Promise, Symbol.species, { get() { throw new Error('no species'); } });
      return { raw: 1 };
    };`;
    const tenantId = newTenant();
    for (let call = 0; call < 3; call++) {
      expect(errorOf(await invoke(runtime, code, { tenantId, timeoutMs: 2_000 }))).toMatchObject({
        code: 'REACTOR_RUNTIME_ERROR',
        message: 'no species',
      });
    }
    expect(rawOf(await invoke(runtime, 'module.exports = async () => ({ raw: 42 });'))).toBe(42);
  });

  it("in a host answer's delivery: a signal's replaced removeEventListener is never called by the runtime", async () => {
    // Once, each delivery of a call of an ended run called it, and it made another call: a chain that kept a core
    // busy for good after the run had answered.
    const code = `module.exports = async (req) => {
      if (req.args.read) return { raw: globalThis.unwatched ?? -1 };
      globalThis.unwatched = 0;
      const signal = new AbortController().signal;
      signal.removeEventListener = () => {
        globalThis.unwatched++;
        fetch('http://127.0.0.1:1/', { signal }).catch(() => {});
      };
      const refused = await fetch('http://127.0.0.1:1/', { signal }).then(() => 'fetched', (e) => e.message);
      fetch('http://127.0.0.1:1/', { signal }).catch(() => {});
      return { raw: refused };
    };`;
    const tenantId = newTenant();
    expect(rawOf(await invoke(runtime, code, { tenantId }))).toBe(
      'fetch to 127.0.0.1 refused: private or reserved address',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(rawOf(await invoke(runtime, code, { tenantId, args: { read: true } }))).toBe(0);
  });
});
