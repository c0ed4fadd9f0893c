import vm from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { invoke, rawOf, startRuntime } from './helpers.ts';

// Each payload returns a string saying what it reached. In the sandbox it must never reach `process`, `require` or
// the host's Object.prototype; the node:vm control shows the same payload does escape a context that is not a
// boundary, so the sandbox assertion can fail.
const runtime = startRuntime();
afterAll(() => runtime.close());

const PROBE = `function probe(getProcess) {
  try { const p = getProcess(); return p && typeof p.pid === 'number' ? 'ESCAPED:process' : 'contained:' + typeof p; }
  catch (e) { return 'contained:' + String(e && e.message).slice(0, 60); }
}`;

const payloads: Record<string, string> = {
  'constructor chain from the global': `probe(() => this.constructor.constructor('return process')())`,
  'constructor chain from a global function': `probe(() => setTimeout.constructor('return process')())`,
  'constructor chain from args objects': `probe(() => req.args.obj.constructor.constructor('return process')())`,
  'constructor chain from an error thrown by a host callback': `(() => { try { new URL('::not a url::') } catch (e) { return probe(() => e.constructor.constructor('return process')()) } return 'no error' })()`,
  'Error.prepareStackTrace and CallSite access': `(() => { Error.prepareStackTrace = (e, cs) => cs.map((c) => c.getThis && c.getThis()).find((t) => t && t.process); const err = new Error('x'); let found; try { new URL('::bad::') } catch (e) { found = e.stack } Error.prepareStackTrace = undefined; return probe(() => found && found.process) })()`,
  'errors thrown while the stack is being formatted': `(() => { Error.prepareStackTrace = () => { throw new Proxy({}, { get: (t, k) => { throw new Error('trap ' + String(k)) } }) }; let r; try { crypto.createHash('nope') } catch (e) { r = probe(() => e.constructor.constructor('return process')()) } Error.prepareStackTrace = undefined; return r })()`,
  'Proxy traps on values handed to the host': `probe(() => { let leaked; console.log(new Proxy({}, { get(t, k, receiver) { leaked = receiver; return undefined } })); return leaked && leaked.constructor.constructor('return process')() })`,
  'Symbol.species on promises': `probe(() => { let captured; class Evil extends Promise { static get [Symbol.species]() { return function (exec) { exec((v) => { captured = v }, () => {}); } } } Evil.resolve(1).then(() => 1); return captured && captured.constructor.constructor('return process')() })`,
  'dynamic import()': `probe(() => { throw new Error(typeof import('node:fs')) })`,
  WebAssembly: `probe(() => WebAssembly.Module)`,
};

describe('sandbox escapes', () => {
  for (const [family, payload] of Object.entries(payloads)) {
    it(`contains: ${family}`, async () => {
      const code = `${PROBE}\nmodule.exports = async function (req) { return { raw: await (async () => ${payload})() } };`;
      const outcome = await invoke(runtime, code, { args: { obj: { a: 1 } } });
      const reached = outcome.ok ? String(outcome.raw) : outcome.error.message;
      expect(reached).not.toMatch(/ESCAPED/);
      // The payload must actually have run, not failed to compile.
      expect(outcome.ok || outcome.error.code !== 'INVALID_REACTOR_CODE').toBe(true);
    });
  }

  it('contains thenables awaited by the host: the result is copied as JSON, never resolved on the host', async () => {
    const code = `module.exports = async () => ({ raw: { then(resolve) { resolve(this.constructor.constructor('return process')()) } } })`;
    const outcome = await invoke(runtime, code);
    expect(outcome.ok && JSON.stringify(outcome.raw)).toBe('{}');
  });

  it('keeps Object.prototype pollution inside the isolate', async () => {
    const code = `module.exports = async () => { Object.prototype.polluted = 'yes'; Array.prototype.polluted = 'yes'; return { raw: ({}).polluted } }`;
    expect(rawOf(await invoke(runtime, code))).toBe('yes');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('never leaks a host stack trace in an error', async () => {
    const outcome = await invoke(runtime, `module.exports = async () => { new URL('::bad::') }`);
    expect(outcome.ok).toBe(false);
    expect(JSON.stringify(outcome)).not.toMatch(/node:internal|\/work\/|at .*\.ts:/);
  });
});

describe('control: the same payloads escape a plain node:vm context', () => {
  function inVm(payload: string, extra: Record<string, unknown> = {}) {
    const sandbox = { req: { args: { obj: { a: 1 } } }, console, setTimeout, URL, crypto: globalThis.crypto, ...extra };
    return vm.runInNewContext(`${PROBE}\n${payload}`, sandbox);
  }

  it('reaches process through an args object created by the host', () => {
    expect(inVm(payloads['constructor chain from args objects']!)).toBe('ESCAPED:process');
  });

  it('reaches process through a host function passed in', () => {
    expect(inVm(payloads['constructor chain from a global function']!)).toBe('ESCAPED:process');
  });

  it('reaches process through an error thrown by a host callback', () => {
    expect(inVm(payloads['constructor chain from an error thrown by a host callback']!)).toBe('ESCAPED:process');
  });

  it('pollutes the host Object.prototype through a host object', () => {
    inVm(`req.args.obj.constructor.prototype.pollutedByVm = 'yes'`);
    expect(({} as Record<string, unknown>).pollutedByVm).toBe('yes');
    delete (Object.prototype as Record<string, unknown>).pollutedByVm;
  });
});
