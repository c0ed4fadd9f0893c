import { afterAll, describe, expect, it } from 'vitest';
import { invoke, rawOf, startRuntime } from './helpers.ts';

// Globals a formula written for Node expects, implemented inside the isolate (src/runtime/sandbox/prelude/).
const runtime = startRuntime();
afterAll(() => runtime.close());

const run = async (body: string) => rawOf(await invoke(runtime, `module.exports = async (req) => { ${body} }`));

describe('AbortController and AbortSignal', () => {
  it('abort an AbortSignal once, with an AbortError DOMException or the reason given, and tell its listeners', async () => {
    const raw = await run(`
      const seen = [];
      const controller = new AbortController();
      const { signal } = controller;
      signal.onabort = (event) => seen.push('onabort:' + event.type);
      signal.addEventListener('abort', (event) => seen.push('listener:' + (event.target === signal)), { once: true });
      const before = signal.aborted;
      controller.abort();
      controller.abort('again');
      let thrown;
      try { signal.throwIfAborted() } catch (e) { thrown = e }
      const given = AbortSignal.abort('my reason');
      const any = AbortSignal.any([new AbortController().signal, given]);
      let illegal;
      try { new AbortSignal() } catch (e) { illegal = e.message }
      return { raw: {
        before, after: signal.aborted, seen,
        reason: { name: signal.reason.name, message: signal.reason.message, code: signal.reason.code,
          isError: signal.reason instanceof Error, isDOMException: signal.reason instanceof DOMException },
        thrownIsReason: thrown === signal.reason,
        given: [given.aborted, given.reason], any: [any.aborted, any.reason], illegal,
      } };`);
    expect(raw).toEqual({
      before: false,
      after: true,
      seen: ['onabort:abort', 'listener:true'],
      reason: {
        name: 'AbortError',
        message: 'This operation was aborted',
        code: 20,
        isError: true,
        isDOMException: true,
      },
      thrownIsReason: true,
      given: [true, 'my reason'],
      any: [true, 'my reason'],
      illegal: 'Illegal constructor',
    });
  });

  it('AbortSignal.timeout aborts with a TimeoutError after the delay', async () => {
    const raw = await run(`
      const signal = AbortSignal.timeout(20);
      const early = signal.aborted;
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      return { raw: { early, name: signal.reason.name, code: signal.reason.code } };`);
    expect(raw).toEqual({ early: false, name: 'TimeoutError', code: 23 });
  });
});

describe('structuredClone', () => {
  it('deep-copies JSON-like values, Date, Map, Set, typed arrays and errors, keeping cycles and shared references', async () => {
    const raw = await run(`
      const shared = { n: 1 };
      const bytes = new Uint8Array([1, 2, 3]);
      const original = {
        list: [shared, shared], when: new Date(86400000), map: new Map([['k', shared]]), set: new Set([1, 'two']),
        bytes, view: new Uint16Array(bytes.buffer.slice(0, 2)), buffer: Buffer.from('hi'), big: 10n,
        error: new RangeError('out of range'), re: /a+/gi, nothing: undefined,
      };
      original.self = original;
      const copy = structuredClone(original);
      bytes[0] = 99;
      shared.n = 2;
      return { raw: {
        distinct: copy !== original && copy.list[0] !== shared,
        sharedKept: copy.list[0] === copy.list[1] && copy.map.get('k') === copy.list[0],
        cycle: copy.self === copy,
        n: copy.list[0].n,
        date: copy.when instanceof Date && copy.when.toISOString(),
        map: copy.map instanceof Map && copy.map.size, set: [...copy.set],
        bytes: copy.bytes instanceof Uint8Array && [...copy.bytes], view: copy.view instanceof Uint16Array,
        buffer: copy.buffer.constructor.name, big: typeof copy.big,
        error: [copy.error instanceof RangeError, copy.error.message], re: String(copy.re),
        hasUndefined: 'nothing' in copy,
      } };`);
    expect(raw).toEqual({
      distinct: true,
      sharedKept: true,
      cycle: true,
      n: 1,
      date: '1970-01-02T00:00:00.000Z',
      map: 1,
      set: [1, 'two'],
      bytes: [1, 2, 3],
      view: true,
      buffer: 'Uint8Array',
      big: 'bigint',
      error: [true, 'out of range'],
      re: '/a+/gi',
      hasUndefined: true,
    });
  });

  it('throws a DataCloneError for functions and symbols, as Node does', async () => {
    const raw = await run(`
      const attempt = (value) => { try { structuredClone(value); return 'cloned' } catch (e) { return [e.name, e.code, e.message] } };
      return { raw: [attempt({ f: () => 1 }), attempt(Symbol('s')), attempt(Promise.resolve())] };`);
    expect(raw).toEqual([
      ['DataCloneError', 25, '() => 1 could not be cloned.'],
      ['DataCloneError', 25, 'Symbol(s) could not be cloned.'],
      ['DataCloneError', 25, '#<Promise> could not be cloned.'],
    ]);
  });
});

describe('crypto.timingSafeEqual', () => {
  it('compares Buffers and typed arrays, and refuses different lengths and non-buffers as Node does', async () => {
    const raw = await run(`
      const crypto = require('crypto');
      const attempt = (a, b) => { try { return crypto.timingSafeEqual(a, b) } catch (e) { return [e.name, e.code, e.message] } };
      return { raw: {
        same: attempt(Buffer.from('secret'), Buffer.from('secret')),
        differs: attempt(Buffer.from('secret'), Buffer.from('secreT')),
        typed: attempt(new Uint16Array([1, 2]), new Uint8Array([1, 0, 2, 0])),
        global: globalThis.crypto.timingSafeEqual(new Uint8Array([7]).buffer, new Uint8Array([7])),
        length: attempt(Buffer.from('a'), Buffer.from('ab')),
        type: attempt('a', Buffer.from('a')),
      } };`);
    expect(raw).toEqual({
      same: true,
      differs: false,
      typed: true,
      global: true,
      length: ['RangeError', 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH', 'Input buffers must have the same byte length'],
      type: [
        'TypeError',
        'ERR_INVALID_ARG_TYPE',
        'The "buf1" argument must be an instance of ArrayBuffer, Buffer, TypedArray, or DataView.',
      ],
    });
  });
});
