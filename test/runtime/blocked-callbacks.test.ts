import { afterAll, describe, expect, it } from 'vitest';
import { errorOf, invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

// One worker thread, so that both runs share it.
const runtime = startRuntime({ threads: 1 });
afterAll(() => runtime.close());

describe('a run whose isolate waits on its worker thread while another tenant holds that thread', () => {
  it("times out alone: the other tenant's long call finishes, and the process lives on", async () => {
    // After its await, the first formula runs on isolated-vm's own threads, and each console.log waits for the worker
    // thread, which the second tenant's synchronous loop holds for 8 s. Once, the first run's backstop (its timeout
    // + 1 s) terminated the worker under that loop: the second run failed REACTOR_INTERRUPTED, and a probe saw the
    // whole process abort (terminating a worker that an isolate on isolated-vm's threads is waiting on).
    const waiting = invoke(
      runtime,
      'module.exports = async () => { await new Promise((r) => setTimeout(r, 20)); for (;;) console.log(0); };',
      { tenantId: newTenant(), timeoutMs: 200 },
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    const holding = invoke(
      runtime,
      'module.exports = async () => { const end = Date.now() + 8_000; while (Date.now() < end) {} return { raw: 0 }; };',
      { tenantId: newTenant(), timeoutMs: 10_000 },
    );
    expect(errorOf(await waiting)).toMatchObject({ code: 'REACTOR_TIMEOUT' });
    expect(rawOf(await holding)).toBe(0);
    expect(rawOf(await invoke(runtime, 'module.exports = async () => ({ raw: 42 });'))).toBe(42);
  }, 20_000);
});
