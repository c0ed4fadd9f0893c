import http from 'node:http';
import type { AddressInfo } from 'node:net';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invoke, rawOf, startRuntime } from './helpers.ts';

// Every escape family runs the identical payload twice: in a plain node:vm context set up the way a naive sandbox
// would set it up, where it must escape (so the payload is known to work and the sandbox assertion can fail), and
// through our runtime, where it must be contained.

// One thread, so the pollution test's second call lands on the worker the first call ran in. Loopback is allowed so
// fetch can reach the test server and get a Response.
const runtime = startRuntime({ threads: 1, egressAllow: ['127.0.0.1/32'] });
const SDK = '@basis-theory/basis-theory-reactor-formulas-sdk-js';
// Nothing listens on port 1: fetches and req.bt calls there fail fast, which is how the payloads get rejection errors.
const REFUSED_URL = 'http://127.0.0.1:1/';

let server: http.Server;
let serverUrl = '';
beforeAll(async () => {
  server = http.createServer((_, res) => res.end('{}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await runtime.close();
  server.close();
});

// Each payload is a formula main function that hands whatever it got hold of to `probe`, which tries the classic way
// out on each value: the Function constructor of the value's realm, asked for `process`. Its answer has the shape of
// a formula result, so it comes back the same way from the runtime and from the node:vm control.
const PROBE = `function probe(...values) {
  let outcome = 'nothing reached';
  for (const value of values) {
    if (value === null || value === undefined) continue;
    try {
      // A function's constructor may be AsyncFunction; its constructor in turn is Function either way.
      const reached = value.constructor.constructor('return process')();
      if (reached && typeof reached.pid === 'number') return { raw: 'ESCAPED:process' };
      outcome = 'got ' + typeof reached;
    } catch (e) {
      outcome = String(e && e.message).slice(0, 80);
    }
  }
  return { raw: 'contained:' + outcome };
}`;

const args = () => ({ obj: { a: 1 }, list: [1, 2], url: serverUrl });

async function runInSandbox(payload: string): Promise<unknown> {
  const code = `${PROBE}\nmodule.exports = ${payload};`;
  const outcome = await invoke(runtime, code, {
    args: args(),
    configuration: { apiKey: 'configured' },
    // Any endpoint makes req.bt an object; this one refuses, so its calls reject.
    bt: { endpoint: `${REFUSED_URL}graphql`, apiKey: 'key' },
  });
  // rawOf throws unless the payload compiled, ran and returned: a refused or crashed payload proves nothing.
  return rawOf(outcome);
}

// The naive sandbox's host helpers, compiled as sloppy-mode code (a CommonJS module without 'use strict'): V8's
// CallSite getThis()/getFunction() answer only for sloppy frames. Its log joins its arguments into a line.
const naiveLog = vm.runInThisContext(`(function log() {
  var line = '';
  for (var i = 0; i < arguments.length; i++) line += (i ? ' ' : '') + arguments[i];
  return line;
})`);
class NaiveSdkError extends Error {}

/**
 * A context with what a naive host passes in: a request of plain objects, a logger, timers, fetch, URL, require, and
 * the host's own AbortController and structuredClone.
 */
function naiveSandbox() {
  const req = {
    args: args(),
    configuration: { apiKey: 'configured' },
    bt: { tokens: { retrieve: async (_id: string) => Promise.reject(new Error('Token not found')) } },
  };
  const context = vm.createContext({
    console: { log: naiveLog },
    setTimeout,
    fetch,
    URL,
    AbortController,
    structuredClone,
    require: (name: string) => (name === SDK ? { BadRequestError: NaiveSdkError } : undefined),
  });
  return { req, context };
}

async function runInNaiveVm(payload: string, options?: vm.RunningCodeOptions): Promise<unknown> {
  const { req, context } = naiveSandbox();
  const main = vm.runInContext(`${PROBE}\n(${payload})`, context, options);
  return (await main(req)).raw;
}

// Values formula code is handed or gets back from host calls, each tried for its realm's Function. In node:vm even
// the global leads out: a lookup the context does not answer falls through to the host object it was made from.
const passedIn: Record<string, string> = {
  'the global': 'globalThis',
  'the request': 'req',
  'req.args': 'req.args',
  'an object in req.args': 'req.args.obj',
  'an array in req.args': 'req.args.list',
  'req.configuration': 'req.configuration',
  'req.bt': 'req.bt',
  'a req.bt method': 'req.bt.tokens.retrieve',
  'a req.bt rejection error': `req.bt.tokens.retrieve('tok').catch((e) => e)`,
  'console.log': 'console.log',
  setTimeout: 'setTimeout',
  require: 'require',
  'a fetch Response': 'fetch(req.args.url)',
  'a fetch rejection error': `fetch('${REFUSED_URL}').catch((e) => e)`,
  'an error thrown by URL': `(() => { try { new URL('::not a url::') } catch (e) { return e } })()`,
  'an SDK error': `new (require('${SDK}').BadRequestError)('bad input')`,
  'an AbortSignal': 'new AbortController().signal',
  'the rejection of an aborted fetch': `(() => {
    const controller = new AbortController();
    const pending = fetch(req.args.url, { signal: controller.signal }).catch((e) => e);
    controller.abort();
    return pending;
  })()`,
  'a structuredClone copy': 'structuredClone(req.args)',
  'a structuredClone DataCloneError': '(() => { try { structuredClone(() => 1) } catch (e) { return e } })()',
};

describe('constructor chains', () => {
  for (const [source, expression] of Object.entries(passedIn)) {
    const payload = `async (req) => probe(await (${expression}))`;

    it(`control: node:vm is escaped from ${source}`, async () => {
      expect(await runInNaiveVm(payload)).toBe('ESCAPED:process');
    });

    it(`contained from ${source}`, async () => {
      // The chain ran to the end: the Function it found is the isolate's, where there is no process.
      expect(await runInSandbox(payload)).toBe('contained:process is not defined');
    });
  }
});

const FORMATTING = 'errors thrown while the stack is being formatted';
const families: Record<string, string> = {
  // node:vm calls the context's Error.prepareStackTrace with a CallSite for every frame, the host's included; for a
  // sloppy host frame (the naive log, which calls toString) getThis() and getFunction() are host objects.
  'Error.prepareStackTrace and CallSite access': `() => {
    const reached = [];
    Error.prepareStackTrace = (error, callSites) => callSites;
    const collect = () => {
      for (const site of new Error('probe').stack) reached.push(site.getThis(), site.getFunction());
      return 'logged';
    };
    console.log({ toString: collect, toJSON: collect });
    Error.prepareStackTrace = undefined;
    return probe(...reached);
  }`,

  // Host code formats what the formula made, and host code that throws while formatting throws host-made errors:
  // Node's prepareStackTrace callback calls the host's Error.prototype.toString on a context error, which fails on a
  // Symbol name; the naive log's string concatenation fails on a toString that returns an object.
  [FORMATTING]: `() => {
    const caught = [];
    const named = new Error('probe');
    named.name = Symbol('not a string');
    try { named.stack } catch (e) { caught.push(e) }
    try { console.log({ toString: () => ({}) }) } catch (e) { caught.push(e) }
    return probe(...caught);
  }`,

  // Traps receive whatever the calling code supplies. Every trap here records its arguments: when the host calls a
  // callable proxy (the setTimeout callback) the argument list and \`this\` (the host's Timeout) are the host's.
  'Proxy traps on values handed to the host': `async () => {
    const seen = [];
    const recordEveryTrap = new Proxy({}, {
      get: (_, trap) => (...trapArgs) => { seen.push(...trapArgs); return Reflect[trap](...trapArgs) },
    });
    console.log(new Proxy({}, recordEveryTrap));
    await new Promise((resolve) => setTimeout(new Proxy(resolve, recordEveryTrap), 0));
    return probe(...seen);
  }`,

  // A promise made by host code (fetch's) has the host's \`then\`, which asks the promise's constructor for
  // Symbol.species and calls it with a capability executor made in the host's realm.
  'Symbol.species on promises': `async () => {
    const pending = fetch('${REFUSED_URL}');
    pending.catch(() => {});
    let executor;
    pending.constructor = { [Symbol.species]: function (exec) { executor = exec; exec(() => {}, () => {}) } };
    pending.then(() => {});
    return probe(executor);
  }`,

  // The host awaits the returned thenable. \`await\` makes the resolving functions in the realm of \`then\`, so a
  // formula's own then only gets its own realm's; but a then bound to a host function (setTimeout, which passes its
  // extra arguments on) makes the host create them, and setTimeout hands them to the formula's callback.
  'thenables awaited by the host': `() => ({ then: setTimeout.bind(null, (resolve) => resolve(probe(resolve)), 0) })`,

  // In node:vm import() without a loader rejects with an error made by Node's host-side loader; with the main
  // context's loader it hands out host modules (see the extra control below). Either is a way out.
  'dynamic import()': `async () => {
    const caught = [];
    for (const name of ['node:fs', 'fs']) {
      try {
        if (typeof (await import(name)).readFileSync === 'function') return { raw: 'ESCAPED:fs' };
      } catch (e) { caught.push(e) }
    }
    return probe(...caught);
  }`,

  // node:vm contexts share Node's WebAssembly streaming callback: host code that awaits the source and rejects a
  // non-Response with a host-made TypeError. (Our isolate has no WebAssembly at all; the ReferenceError is probed.)
  WebAssembly: `async () => {
    try { await WebAssembly.compileStreaming({}) } catch (e) { return probe(e) }
    return { raw: 'contained:compiled' };
  }`,
};

describe('escape families', () => {
  for (const [family, payload] of Object.entries(families)) {
    it(`control: node:vm is escaped through ${family}`, async () => {
      expect(await runInNaiveVm(payload)).toBe('ESCAPED:process');
    });

    it(`contained: ${family}`, async () => {
      // In the isolate every family gets hold of isolate values only, whose Function finds no process; except that
      // nothing is caught while formatting, since the isolate formats stacks itself and its console.log never throws.
      const expected = family === FORMATTING ? 'contained:nothing reached' : 'contained:process is not defined';
      expect(await runInSandbox(payload)).toBe(expected);
    });
  }

  it('control: node:vm with the main context loader hands dynamic import() the host fs module', async () => {
    const options = { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER };
    expect(await runInNaiveVm(families['dynamic import()']!, options)).toBe('ESCAPED:fs');
  });

  it('dynamic import() fails in the sandbox and the failure reaches nothing', async () => {
    const payload = `async () => ({ raw: await Promise.allSettled([import('node:fs'), import('fs')]).then(
      (all) => all.map((r) => r.status + ':' + probe(r.reason).raw).join(' ')) })`;
    expect(await runInSandbox(payload)).toBe(
      'rejected:contained:process is not defined rejected:contained:process is not defined',
    );
  });
});

// Plants toJSON on the prototypes of its own values and of values passed in, notes that its own realm is now
// polluted, then clears its own realm's prototypes only: whatever belongs to the host stays polluted.
const POLLUTE = `(req) => {
  const planted = () => 'POLLUTED';
  for (const value of [{}, [], planted, req, req.args.list, req.configuration, console.log, setTimeout]) {
    Object.getPrototypeOf(value).toJSON = planted;
  }
  const pollutedItsOwnRealm = JSON.stringify({ a: [] }) === '"POLLUTED"' && JSON.stringify([]) === '"POLLUTED"';
  for (const prototype of [Object.prototype, Array.prototype, Function.prototype]) delete prototype.toJSON;
  return { raw: pollutedItsOwnRealm ? 'planted' : 'not planted' };
}`;
const hostPrototypes = [Object.prototype, Array.prototype, Function.prototype];

describe('prototype pollution', () => {
  it('control: node:vm lets a formula pollute the host Object, Array and Function prototypes', () => {
    const { req, context } = naiveSandbox();
    let raw: unknown;
    let polluted: boolean[];
    try {
      raw = vm.runInContext(`(${POLLUTE})`, context)(req).raw;
      polluted = hostPrototypes.map((prototype) => Object.hasOwn(prototype, 'toJSON'));
    } finally {
      for (const prototype of hostPrototypes) delete (prototype as { toJSON?: unknown }).toJSON;
    }
    expect(raw).toBe('planted');
    expect(polluted).toEqual([true, true, true]);
  });

  it("cannot reach the prototypes of the isolate's host", async () => {
    expect(await runInSandbox(POLLUTE)).toBe('planted');
    // The isolate's host is the worker thread, not this one, so look where the worker would show it: it serialises
    // every request with JSON.stringify, and a planted Object or Array toJSON would turn the next call's args into
    // "POLLUTED". (The worker never serialises a function, so Function.prototype is shown by the control only.)
    const echo = 'module.exports = async (req) => ({ raw: req.args })';
    expect(rawOf(await invoke(runtime, echo, { args: { obj: { a: 1 }, list: [1, 2] } }))).toEqual({
      obj: { a: 1 },
      list: [1, 2],
    });
  });
});

it('never leaks a host stack trace in an error', async () => {
  const outcome = await invoke(runtime, `module.exports = async () => { new URL('::bad::') }`);
  expect(outcome.ok).toBe(false);
  expect(JSON.stringify(outcome)).not.toMatch(/node:internal|\/work\/|at .*\.ts:/);
});
