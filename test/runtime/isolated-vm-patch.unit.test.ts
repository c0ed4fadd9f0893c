import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * What patches/isolated-vm+5.0.4.patch promises, checked on isolated-vm itself. Each case runs in a child process:
 * on an unpatched build it freezes its thread for good, which would hang this one too; the child is killed instead
 * and the case fails. The runtime's own behaviour is in formula-diagnostics.test.ts.
 */
const run = promisify(execFile);

/** Runs `body` (with `ivm`, `isolate`, `context` and `call(source)` in scope) and returns what it printed. */
async function inChild(body: string): Promise<string[]> {
  const script = `
    const ivm = require('isolated-vm');
    const isolate = new ivm.Isolate({ memoryLimit: 32 });
    const context = isolate.createContextSync();
    const call = (source) => {
      const fn = context.evalSync('(function () {' + source + '})', { reference: true });
      try { fn.applySync(undefined, [], { timeout: 1000 }); return 'returned'; }
      catch (error) { return error.message; }
    };
    ${body}`;
  const { stdout } = await run(process.execPath, ['--no-node-snapshot', '-e', script], { timeout: 20_000 });
  return stdout.trim().split('\n');
}

const UNREADABLE = 'the error could not be read: its message, stack or toString ran past the time limit';

describe('isolated-vm, as patched', () => {
  it('marks its build, which the gateway checks at start', async () => {
    expect(await inChild('console.log(ivm.rejectionReadLimitMs)')).toEqual(['50']);
  });

  it('gives up reading an unhandled rejection whose reason never finishes being read, and the isolate goes on', async () => {
    const reasons = [
      `const e = new Error('x'); Object.defineProperty(e, 'stack', { get() { for (;;) {} } }); Promise.reject(e);`,
      `Promise.reject(new Proxy({}, { get() { for (;;) {} } }));`,
      `Promise.reject({ message: { toString() { for (;;) {} } } });`,
      // V8 formats a stack on first read, through a user's Error.prepareStackTrace.
      `Error.prepareStackTrace = () => { for (;;) {} }; Promise.reject(new Error('p'));`,
    ];
    const lines = await inChild(`
      for (const source of ${JSON.stringify(reasons)}) console.log(call(source));
      console.log(context.evalSync('Error.prepareStackTrace = undefined; 1 + 1'));
      console.log(call("Promise.reject(new TypeError('readable'))"));`);
    expect(lines).toEqual([UNREADABLE, UNREADABLE, UNREADABLE, UNREADABLE, '2', 'readable']);
  });

  it('gives up reading a value a call throws, on the synchronous and the asynchronous path alike', async () => {
    const lines = await inChild(`
      const thrown = [
        "const e = {}; Object.defineProperty(e, 'message', { get() { for (;;) {} } }); throw e;",
        'throw new Proxy({}, { get() { for (;;) {} } });',
        "Error.prepareStackTrace = () => { for (;;) {} }; throw new Error('p');",
      ];
      for (const source of thrown) console.log(call(source));
      context.evalSync('Error.prepareStackTrace = undefined');
      console.log(call("throw new TypeError('readable')"));
      const fn = context.evalSync('(function () { throw new Proxy({}, { get() { for (;;) {} } }); })', { reference: true });
      fn.apply(undefined, [], { timeout: 1000 }).catch((error) => console.log(error.message));`);
    expect(lines).toEqual([UNREADABLE, UNREADABLE, UNREADABLE, 'readable', UNREADABLE]);
  });

  it('runs what a reason queued while being read within a time limit, even in a task that has none', async () => {
    const lines = await inChild(`
      console.log(call(\`const e = new Error('x');
        Object.defineProperty(e, 'stack', { get() { Promise.resolve().then(() => { for (;;) {} }); return 's'; } });
        Promise.reject(e);\`));
      try { isolate.compileScriptSync('1'); console.log('compiled'); } catch (error) { console.log(error.message); }
      console.log(context.evalSync('1 + 1'));`);
    expect(lines).toEqual(['x', 'Script execution timed out.', '2']);
  });
});
