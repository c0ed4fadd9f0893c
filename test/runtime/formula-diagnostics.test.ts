import { afterAll, describe, expect, it } from 'vitest';
import { invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

// What a formula's author is told about their own code: where an error is, and what went wrong out of reach.
const runtime = startRuntime({ threads: 1 });
afterAll(() => runtime.close());

describe('error positions', () => {
  it("gives the formula's own line and column in stacks, on line 1 and after", async () => {
    const firstLine = `module.exports = async () => { try { null.x } catch (e) { return { raw: e.stack } } };`;
    expect(rawOf(await invoke(runtime, firstLine))).toMatch(/reactor-formula\.js:1:43\)/);
    const thirdLine = `const sdk = 1;\nmodule.exports = async () => {\n  try { undefined.y } catch (e) { return { raw: e.stack } }\n};`;
    expect(rawOf(await invoke(runtime, thirdLine))).toMatch(/reactor-formula\.js:3:19\)/);
  });

  it("gives the formula's own line and column for code that does not compile, at create time too", async () => {
    expect(await runtime.checkCode('module.exports = ;')).toMatchObject({
      ok: false,
      message: "Reactor code does not compile: Unexpected token ';' [reactor-formula.js:1:18]",
    });
    expect(await runtime.checkCode('module.exports = async () => {\n  return { raw: 1 +* 2 };\n};')).toMatchObject({
      ok: false,
      message: "Reactor code does not compile: Unexpected token '*' [reactor-formula.js:2:20]",
    });
  });
});

describe('timers', () => {
  it('keeps at most 10,000 of a run pending on the host, and says so when one is refused', async () => {
    const code = `module.exports = async () => {
      let fired = 0;
      const done = new Promise((resolve) => setTimeout(resolve, 1_000));
      for (let i = 0; i < 10_050; i++) setTimeout(() => fired++, 50);
      await done;
      return { raw: fired };
    };`;
    const outcome = await invoke(runtime, code);
    // The first timer is the run's own wait: at most 9,999 of the others fire (on a busy machine not all in time).
    expect(outcome.ok).toBe(true);
    expect(rawOf(outcome)).toBeLessThanOrEqual(9_999);
    expect(JSON.stringify(outcome.logs)).toContain('A run may have at most 10000 timers pending');
  });
});

describe('errors nobody can catch', () => {
  it('logs a promise rejection the formula never handles, and the run goes on to its result', async () => {
    const tenantId = newTenant();
    const code = `module.exports = async () => {
      Promise.reject(new TypeError('nobody handles me'));
      await new Promise((resolve) => setTimeout(resolve, 5));
      return { raw: 'finished' };
    };`;
    for (let call = 0; call < 2; call++) {
      const outcome = await invoke(runtime, code, { tenantId });
      expect(outcome).toMatchObject({
        ok: true,
        raw: 'finished',
        logs: [{ level: 'error', message: 'Unhandled rejection: TypeError: nobody handles me' }],
      });
    }
  });

  it('logs an unhandled rejection after the result, without changing it', async () => {
    const code = `module.exports = async () => { Promise.reject('plain reason'); return { raw: 'result' }; };`;
    expect(await invoke(runtime, code)).toMatchObject({
      ok: true,
      raw: 'result',
      logs: [{ level: 'error', message: 'Unhandled rejection: plain reason' }],
    });
  });

  it('logs an exception thrown in a setTimeout callback, and the run goes on', async () => {
    const code = `module.exports = async () => {
      setTimeout(() => { throw new Error('timer broke') }, 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { raw: 'finished' };
    };`;
    expect(await invoke(runtime, code)).toMatchObject({
      ok: true,
      raw: 'finished',
      logs: [{ level: 'error', message: 'Uncaught exception in a setTimeout callback: Error: timer broke' }],
    });
  });

  // isolated-vm copies the reason to the host after the call, running these getters outside the run's time limit;
  // unpatched, each such run froze a thread for good and, with this pool's two threads gone, every later run timed
  // out (patches/isolated-vm+5.0.4.patch gives the copy a limit of 50 ms).
  const UNREADABLE_REASONS = {
    'a stack getter that never returns': `(() => { const e = new Error('x'); Object.defineProperty(e, 'stack', { get() { for (;;) {} } }); return e; })()`,
    'a proxy whose traps never return': 'new Proxy({}, { get() { for (;;) {} } })',
    'a message whose toString never returns': '{ message: { toString() { for (;;) {} } } }',
  };
  const UNREADABLE =
    'Unhandled rejection: Error: the error could not be read: its message, stack or toString ran past the time limit';

  it.each(Object.entries(UNREADABLE_REASONS))(
    'logs a rejection whose reason has %s, and the sandbox lives on',
    async (_, reason) => {
      const tenantId = newTenant();
      const shapes = [
        `module.exports = async () => { Promise.reject(${reason}); return { raw: 'done' }; };`,
        // Rejected in the call that delivers a timer to the isolate, which also answers the run.
        `module.exports = async () => { await new Promise((r) => setTimeout(r, 1)); Promise.reject(${reason}); return { raw: 'done' }; };`,
        // A native async function's own rejection, which no hook in the prelude could see.
        `module.exports = async () => { (async () => { throw ${reason}; })(); return { raw: 'done' }; };`,
      ];
      for (const code of shapes) {
        // Three runs of each: more than the pool's threads and spares together.
        for (let call = 0; call < 3; call++) {
          expect(await invoke(runtime, code, { tenantId, timeoutMs: 2_000 })).toMatchObject({
            ok: true,
            raw: 'done',
            logs: [{ level: 'error', message: UNREADABLE }],
          });
        }
      }
      expect(rawOf(await invoke(runtime, 'module.exports = async () => ({ raw: 42 });'))).toBe(42);
    },
  );

  it('refuses module code that leaves a rejection with an unreadable reason, and checks code after it', async () => {
    for (const reason of Object.values(UNREADABLE_REASONS)) {
      expect(await runtime.checkCode(`Promise.reject(${reason});\nmodule.exports = async () => ({});`)).toEqual({
        ok: false,
        reason: 'invalid',
        message: `Reactor code failed to load: ${UNREADABLE}`,
      });
    }
    expect(await runtime.checkCode('module.exports = async () => ({});')).toMatchObject({ ok: true });
  });

  it('refuses module code that leaves a promise rejected, saying so rather than that it does not compile', async () => {
    expect(
      await runtime.checkCode(`Promise.reject(new Error('at load'));\nmodule.exports = async () => ({});`),
    ).toEqual({
      ok: false,
      reason: 'invalid',
      message: 'Reactor code failed to load: Unhandled rejection: Error: at load',
    });
  });
});
