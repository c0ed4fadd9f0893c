import { afterAll, describe, expect, it } from 'vitest';
import { errorOf, invoke, newTenant, rawOf, startRuntime } from './helpers.ts';

const runtime = startRuntime({ maxOutputBytes: 10_000 });
afterAll(() => runtime.close());

const SDK = `require('@basis-theory/basis-theory-reactor-formulas-sdk-js')`;

describe('formula contract (seeds 001 and 003)', () => {
  it('runs the seed example unchanged', async () => {
    const code = `
module.exports = async function (req) {
// Do something with \`req.configuration.SERVICE_API_KEY\`
return {
raw: {
foo: 'bar'
}
};
};
`;
    const outcome = await invoke(runtime, code, { configuration: { SERVICE_API_KEY: 'k' } });
    expect(outcome).toMatchObject({ ok: true, raw: { foo: 'bar' }, tokenize: null, logs: [] });
  });

  it('passes args and configuration and returns raw and tokenize', async () => {
    const code = `module.exports = async function (req) {
  const { my_arg } = req.args;
  const { MY_CONFIG } = req.configuration;
  return { raw: { my_arg, MY_CONFIG, bt: req.bt }, tokenize: { card: { type: 'token', data: my_arg } } };
};`;
    const outcome = await invoke(runtime, code, { args: { my_arg: 'a' }, configuration: { MY_CONFIG: 'c' } });
    expect(outcome).toMatchObject({
      ok: true,
      raw: { my_arg: 'a', MY_CONFIG: 'c', bt: null },
      tokenize: { card: { data: 'a' } },
    });
  });

  it('accepts a synchronous function too', async () => {
    expect(
      rawOf(await invoke(runtime, 'module.exports = (req) => ({ raw: req.args.n * 2 })', { args: { n: 21 } })),
    ).toBe(42);
  });

  it('compiles once per formula version: a second call reuses the loaded module', async () => {
    const single = startRuntime({ threads: 1 });
    const tenantId = newTenant();
    const code = 'let calls = 0; module.exports = async () => ({ raw: ++calls });';
    expect(rawOf(await invoke(single, code, { tenantId }))).toBe(1);
    expect(rawOf(await invoke(single, code, { tenantId }))).toBe(2);
    await single.close();
  });
});

describe('SDK errors', () => {
  const cases: [string, string, string, number][] = [
    ['BadRequestError', `'bad card'`, 'BAD_REQUEST', 400],
    ['InvalidReactorConfigurationError', `['missing KEY']`, 'BAD_REQUEST', 400],
    ['AuthenticationError', `'who?'`, 'UNAUTHENTICATED', 401],
    ['InvalidPaymentMethodError', `'expired'`, 'INVALID_PAYMENT_METHOD', 402],
    ['AuthorizationError', `'no'`, 'FORBIDDEN', 403],
    ['RateLimitError', `'slow down'`, 'RATE_LIMITED', 429],
    ['ServiceUnavailableError', `'down'`, 'SERVICE_UNAVAILABLE', 503],
    ['ReactorRuntimeError', `'boom'`, 'REACTOR_RUNTIME_ERROR', 500],
  ];
  for (const [name, arg, code, status] of cases) {
    it(`maps ${name} to ${code} ${status}`, async () => {
      const error = errorOf(
        await invoke(
          runtime,
          `const { ${name} } = ${SDK}; module.exports = async () => { throw new ${name}(${arg}); };`,
        ),
      );
      expect(error).toMatchObject({ code, status });
      expect(error.errors?.error?.length).toBe(1);
    });
  }

  it('normalises errors like the SDK: string, array of strings, object passed through', async () => {
    const run = (arg: string) =>
      invoke(
        runtime,
        `const { BadRequestError } = ${SDK}; module.exports = async () => { throw new BadRequestError(${arg}); };`,
      );
    expect(errorOf(await run(`'one'`)).errors).toEqual({ error: ['one'] });
    expect(errorOf(await run(`['a', 'b']`)).errors).toEqual({ error: ['a', 'b'] });
    expect(errorOf(await run(`{ card: ['is expired'], cvc: 'wrong' }`)).errors).toEqual({
      card: ['is expired'],
      cvc: ['wrong'],
    });
  });

  it('maps CustomHttpResponseError to REACTOR_RUNTIME_ERROR with its status and the response as JSON detail', async () => {
    const error = errorOf(
      await invoke(
        runtime,
        `const { CustomHttpResponseError } = ${SDK}; module.exports = async () => { throw new CustomHttpResponseError({ status: 418, headers: { 'x-a': '1' }, body: { teapot: true } }); };`,
      ),
    );
    expect(error).toMatchObject({ code: 'REACTOR_RUNTIME_ERROR', status: 418 });
    expect(JSON.parse(error.detail ?? '')).toEqual({ status: 418, headers: { 'x-a': '1' }, body: { teapot: true } });
  });

  it('maps any other throw, including non-Error values, to REACTOR_RUNTIME_ERROR 500 with the message', async () => {
    expect(
      errorOf(await invoke(runtime, `module.exports = async () => { throw new TypeError('bad thing') }`)),
    ).toMatchObject({ code: 'REACTOR_RUNTIME_ERROR', status: 500, message: 'bad thing' });
    expect(errorOf(await invoke(runtime, `module.exports = async () => { throw 'plain string' }`)).message).toBe(
      'plain string',
    );
    expect(errorOf(await invoke(runtime, `module.exports = async () => { throw Symbol('s') }`)).message).toBe(
      'Symbol(s)',
    );
    // A plain object or an array is described by its JSON, not as "[object Object]".
    expect(
      errorOf(await invoke(runtime, `module.exports = async () => { throw { code: 'declined', retry: false } }`))
        .message,
    ).toBe('Reactor threw a non-Error value: {"code":"declined","retry":false}');
    expect(errorOf(await invoke(runtime, 'module.exports = async () => { throw [1, "two"] }')).message).toBe(
      'Reactor threw a non-Error value: [1,"two"]',
    );
    expect(errorOf(await invoke(runtime, 'module.exports = async () => { throw 42 }')).message).toBe('42');
    const hostile = `module.exports = async () => { throw { get message() { throw new Error('gotcha') }, toString() { throw 1 } } }`;
    expect(errorOf(await invoke(runtime, hostile)).code).toBe('REACTOR_RUNTIME_ERROR');
  });

  it('reports code that does not compile as INVALID_REACTOR_CODE 422', async () => {
    expect(errorOf(await invoke(runtime, 'module.exports = async function (req) {'))).toMatchObject({
      code: 'INVALID_REACTOR_CODE',
      status: 422,
    });
    expect(errorOf(await invoke(runtime, 'module.exports = 42;'))).toMatchObject({ code: 'INVALID_REACTOR_CODE' });
  });

  it('times out, and does not remember as invalid, module code stopped by what was left of one call', async () => {
    // Module code of about 60 ms: too long for a 20 ms call, fine for the next call with its whole second.
    const tenantId = newTenant();
    const code =
      'const end = Date.now() + 60; while (Date.now() < end) {}\nmodule.exports = async () => ({ raw: "loaded" });';
    expect(errorOf(await invoke(runtime, code, { tenantId, timeoutMs: 20 }))).toMatchObject({
      code: 'REACTOR_TIMEOUT',
      status: 504,
      message: 'Reactor timed out after 20 ms',
    });
    expect(rawOf(await invoke(runtime, code, { tenantId, timeoutMs: 5_000 }))).toBe('loaded');
  });
});

describe('checkCode', () => {
  it('accepts a module exporting a function and rejects the rest', async () => {
    expect(await runtime.checkCode('module.exports = async function (req) { return {} }')).toEqual({ ok: true });
    expect(await runtime.checkCode('module.exports = {}')).toMatchObject({ ok: false });
    // A class is typeof 'function', but cannot be called without `new`.
    expect(await runtime.checkCode('module.exports = class Reactor { constructor(req) {} }')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/must export a function/),
    });
    expect(await runtime.checkCode('module.exports = class{ }')).toMatchObject({ ok: false });
    // Functions whose source merely starts with the letters: an arrow's parameter, a method.
    const methods = '({ classify(req) { return {} } }).classify';
    for (const callable of ['(req) => ({})', 'function main(req) { return {} }', 'classification => ({})', methods]) {
      expect(await runtime.checkCode(`module.exports = ${callable}`)).toEqual({ ok: true });
    }
    expect(await runtime.checkCode('module.exports = (')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/compile/),
    });
    expect(await runtime.checkCode('while (true) {}')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/did not finish/),
    });
  });
});

describe('require allowlist', () => {
  it('refuses anything not on the list with a clear error', async () => {
    for (const name of ['fs', 'child_process', 'node:fs', 'lodash', '../../src/errors.ts']) {
      const error = errorOf(
        await invoke(runtime, `module.exports = async () => { require(${JSON.stringify(name)}); return {} }`),
      );
      expect(error.message).toBe(`Module "${name}" is not available in reactor formulas`);
    }
  });
});

describe('globals', () => {
  it('provides Buffer, TextEncoder, atob/btoa, URL, URLSearchParams, crypto and timers', async () => {
    const code = `module.exports = async () => {
  await new Promise((r) => setTimeout(r, 5));
  const crypto = require('crypto');
  const bytes = new Uint8Array(8); globalThis.crypto.getRandomValues(bytes);
  const u = new URL('/p?a=1&b=x y', 'https://example.com');
  u.searchParams.append('c', '3');
  return { raw: {
    b64: Buffer.from('héllo').toString('base64'), hex: Buffer.from('ff00', 'hex').toString('hex'),
    utf8: new TextDecoder().decode(new TextEncoder().encode('€')), atob: atob(btoa('hi')),
    href: u.href, qs: new URLSearchParams({ x: 'a b' }).toString(),
    sha256: crypto.createHash('sha256').update('abc').digest('hex'),
    sha1: crypto.createHash('sha1').update('abc').digest('hex'),
    sha512: crypto.createHash('sha512').update('abc').digest('base64').length,
    hmac: crypto.createHmac('sha256', 'key').update('The quick brown fox jumps over the lazy dog').digest('hex'),
    uuid: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()), random: bytes.some((b) => b !== 0),
    gone: [typeof SharedArrayBuffer, typeof Atomics, typeof WebAssembly, typeof process, typeof globalThis.require],
  } };
};`;
    expect(rawOf(await invoke(runtime, code))).toEqual({
      b64: 'aMOpbGxv',
      hex: 'ff00',
      utf8: '€',
      atob: 'hi',
      href: 'https://example.com/p?a=1&b=x+y&c=3',
      qs: 'x=a+b',
      sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      sha1: 'a9993e364706816aba3e25717850c26c9cd0d89d',
      sha512: 88,
      hmac: 'f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8',
      uuid: true,
      random: true,
      gone: ['undefined', 'undefined', 'undefined', 'undefined', 'undefined'],
    });
  });

  it('drops timers that would fire after the call has finished', async () => {
    const code = `let fired = 0; module.exports = async () => { setTimeout(() => { fired++ }, 1); return { raw: fired } };`;
    const tenantId = newTenant();
    expect(rawOf(await invoke(runtime, code, { tenantId }))).toBe(0);
    // Same tenant, same isolate: had the first call's timer fired after it returned, this would read 1.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rawOf(await invoke(runtime, code, { tenantId }))).toBe(0);
  });
});

describe('console capture', () => {
  it('returns log, warn and error lines of this call only, capped at 100 lines of 2 KB', async () => {
    const code = `module.exports = async (req) => {
  console.log('hello', { a: 1 }, 2); console.warn('careful'); console.error(new Error('bad'));
  if (req.args.flood) { for (let i = 0; i < 500; i++) console.log('x'.repeat(5000)); }
  return {};
};`;
    const quiet = await invoke(runtime, code);
    expect(quiet.logs).toEqual([
      { level: 'log', message: 'hello {"a":1} 2' },
      { level: 'warn', message: 'careful' },
      { level: 'error', message: 'Error: bad' },
    ]);
    const flood = await invoke(runtime, code, { args: { flood: true } });
    expect(flood.logs).toHaveLength(100);
    expect(Math.max(...flood.logs.map((l) => l.message.length))).toBe(2048);
  });
});

describe('result checks', () => {
  const bad: [string, RegExp][] = [
    ['return 42', /must be an object/],
    ['return [1]', /must be an object/],
    ['return undefined', /must be an object/],
    ['return { raw: 1, extra: 2 }', /unexpected property "extra"/],
    ['return { raw: 10n }', /not JSON-serialisable/],
    ['const a = {}; a.self = a; return { raw: a }', /not JSON-serialisable/],
    [`return { raw: 'x'.repeat(20000) }`, /exceeds the 10000 byte limit/],
  ];
  for (const [body, message] of bad) {
    it(`rejects \`${body}\``, async () => {
      const error = errorOf(await invoke(runtime, `module.exports = async () => { ${body} }`));
      expect(error.code).toBe('REACTOR_RUNTIME_ERROR');
      expect(error.message).toMatch(message);
    });
  }
});
