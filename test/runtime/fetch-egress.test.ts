import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEgressPolicy } from '../../src/runtime/sandbox/egress.ts';
import { until } from '../support/until.ts';
import { errorOf, invoke, rawOf, startRuntime } from './helpers.ts';

let server: http.Server;
let base = '';
const seen: { url?: string; auth?: string; body: string }[] = [];
/** Requests to /held open right now, the most there ever were at once, and what answers them (held until then). */
const held = { now: 0, most: 0, answers: [] as (() => void)[], releasing: false };
/** Requests to /hang, which is never answered: how many came, and how many of them the client has closed. */
const hanging = { started: 0, closed: 0 };
const BINARY = Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x41]);
function releaseHeld(): void {
  held.releasing = true;
  for (const answer of held.answers.splice(0)) answer();
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ url: req.url, auth: req.headers.authorization, body });
      if (req.url === '/big') return res.end('x'.repeat(50_000));
      if (req.url === '/binary') return res.end(BINARY);
      if (req.url === '/text') return res.setHeader('content-type', 'text/plain; charset=utf-8').end('héllo € 😀');
      if (req.url === '/hex') return res.end(Buffer.concat(chunks).toString('hex'));
      if (req.url === '/content-type') return res.end(String(req.headers['content-type']));
      if (req.url === '/hang') {
        hanging.started++;
        res.on('close', () => hanging.closed++);
        return;
      }
      if (req.url === '/slow') {
        const answer = setTimeout(() => res.end('slow answer'), 10_500);
        res.on('close', () => clearTimeout(answer));
        return;
      }
      if (req.url === '/held') {
        held.most = Math.max(held.most, ++held.now);
        const answer = () => {
          held.now--;
          res.end('done');
        };
        if (held.releasing) answer();
        else held.answers.push(answer);
        return;
      }
      if (req.url === '/drip') {
        // A byte every 50 ms for 3 s: never idle long enough for a socket timeout.
        const drip = setInterval(() => res.write('x'), 50);
        setTimeout(() => {
          clearInterval(drip);
          res.end();
        }, 3_000);
        return;
      }
      if (req.url === '/redirect-private') return res.writeHead(302, { location: 'http://10.0.0.1/' }).end();
      if (req.url === '/graphql') {
        const { query, variables } = JSON.parse(body);
        res.setHeader('content-type', 'application/json');
        if (String(query).includes('createToken')) {
          const fail = variables.input?.type === 'BAD';
          return res.end(
            JSON.stringify({
              data: {
                createToken: fail
                  ? {
                      __typename: 'BadRequestError',
                      code: 'BAD_REQUEST',
                      status: 400,
                      message: 'bad token',
                      errors: { type: ['invalid'] },
                    }
                  : { __typename: 'Token', id: 'tok-1', type: 'token' },
              },
            }),
          );
        }
        return res.end(JSON.stringify({ data: { token: { id: variables.id, type: 'token', data: 'secret' } } }));
      }
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-echo', req.method ?? '');
      res.end(JSON.stringify({ method: req.method, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

const open = startRuntime({ egressAllow: ['127.0.0.1/32'], maxResponseBytes: 10_000 });
const closed = startRuntime();
const impatient = startRuntime({ egressAllow: ['127.0.0.1/32'], fetchTimeoutMs: 300 });
afterAll(async () => {
  await Promise.all([open.close(), closed.close(), impatient.close()]);
  server.close();
});

describe('egress policy', () => {
  const policy = createEgressPolicy([]);
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:a9fe:a9fe',
  ])('refuses %s', (address) => {
    expect(policy.allowsAddress(address)).toBe(false);
  });
  it.each(['93.184.216.34', '1.1.1.1', '2606:4700:4700::1111'])('allows public %s', (address) => {
    expect(policy.allowsAddress(address)).toBe(true);
  });
  it('allows listed CIDRs and host names despite the private-range policy', () => {
    const custom = createEgressPolicy(['10.0.0.0/8', 'internal.example']);
    expect(custom.allowsAddress('10.9.9.9')).toBe(true);
    expect(custom.allowsAddress('192.168.0.1')).toBe(false);
    expect(custom.allowsHost('INTERNAL.example')).toBe(true);
  });
});

describe('fetch from formulas', () => {
  const fetchCode =
    'module.exports = async (req) => { const r = await fetch(req.args.url, req.args.init); return { raw: { status: r.status, ok: r.ok, echo: r.headers.get("x-echo"), json: await r.json() } } }';

  it.each([
    'http://127.0.0.1:1/',
    'http://10.0.0.1/',
    'http://169.254.169.254/latest/meta-data',
    'http://[::1]:1/',
    'http://localhost:1/',
  ])('refuses %s by default', async (url) => {
    const error = errorOf(await invoke(closed, fetchCode, { args: { url } }));
    expect(error.message).toMatch(/refused/);
  });

  it('performs a real request when the address is in egressAllow', async () => {
    const outcome = await invoke(open, fetchCode, {
      args: { url: `${base}/echo`, init: { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } } },
    });
    expect(rawOf(outcome)).toEqual({ status: 200, ok: true, echo: 'POST', json: { method: 'POST', body: 'hello' } });
  });

  it('checks every redirect hop against the policy', async () => {
    expect(errorOf(await invoke(open, fetchCode, { args: { url: `${base}/redirect-private` } })).message).toMatch(
      /refused/,
    );
  });

  it('caps the response size', async () => {
    expect(errorOf(await invoke(open, fetchCode, { args: { url: `${base}/big` } })).message).toMatch(
      /exceeded 10000 bytes/,
    );
  });

  it('times out the whole fetch, even from a server that keeps sending a byte now and then', async () => {
    const code =
      'module.exports = async (req) => { const started = Date.now(); try { await (await fetch(req.args.url)).text(); return { raw: "finished" } } catch (e) { return { raw: { message: e.message, ms: Date.now() - started } } } }';
    const { message, ms } = rawOf(await invoke(impatient, code, { args: { url: `${base}/drip` } })) as {
      message: string;
      ms: number;
    };
    expect(message).toMatch(/fetch timed out after 300 ms/);
    // Not the 3 s the server takes, nor the call's own 10 s.
    expect(ms).toBeLessThan(1_500);
  });

  it('lets a fetch wait as long as its run has left by default, even past 10 s', async () => {
    const code = 'module.exports = async (req) => ({ raw: await (await fetch(req.args.url)).text() })';
    const outcome = await invoke(open, code, { args: { url: `${base}/slow` }, timeoutMs: 15_000 });
    expect(rawOf(outcome)).toBe('slow answer');
  }, 20_000);
});

describe('fetch: bodies', () => {
  it('carries a binary response byte for byte, and decodes a UTF-8 one as before', async () => {
    const code = `module.exports = async (req) => {
      const get = (path) => fetch(req.args.base + path);
      const bytes = Buffer.from(await (await get('/binary')).arrayBuffer());
      return { raw: {
        arrayBuffer: bytes.toString('hex'),
        binaryText: (await (await get('/binary')).text()).length,
        text: await (await get('/text')).text(),
        textBytes: Buffer.from(await (await get('/text')).arrayBuffer()).toString('hex'),
      } };
    };`;
    expect(rawOf(await invoke(open, code, { args: { base } }))).toEqual({
      arrayBuffer: '000102fffe8041',
      // Invalid UTF-8 reads as replacement characters, as in Node: 00 01 02, three of them, 41.
      binaryText: 7,
      text: 'héllo € 😀',
      textBytes: Buffer.from('héllo € 😀').toString('hex'),
    });
  });

  it('sends Buffer, Uint8Array, ArrayBuffer and DataView request bodies byte for byte', async () => {
    const code = `module.exports = async (req) => {
      const bytes = [0x00, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x41];
      const padded = new Uint8Array([9, ...bytes, 9]);
      const bodies = [Buffer.from(bytes), new Uint8Array(bytes), new Uint8Array(bytes).buffer,
        new DataView(padded.buffer, 1, 7), padded.subarray(1, 8)];
      const sent = [];
      for (const body of bodies) sent.push(await (await fetch(req.args.base + '/hex', { method: 'POST', body })).text());
      return { raw: sent };
    };`;
    expect(rawOf(await invoke(open, code, { args: { base } }))).toEqual(Array(5).fill('000102fffe8041'));
  });

  it('labels a string body text/plain, as Node does, unless the formula names a content type', async () => {
    const code = `module.exports = async (req) => {
      const sent = (init) => fetch(req.args.base + '/content-type', { method: 'POST', ...init }).then((r) => r.text());
      return { raw: [await sent({ body: 'plain' }), await sent({ body: '{}', headers: { 'Content-Type': 'application/json' } }),
        await sent({ body: new URLSearchParams({ a: '1' }) })] };
    };`;
    expect(rawOf(await invoke(open, code, { args: { base } }))).toEqual([
      'text/plain;charset=UTF-8',
      'application/json',
      'application/x-www-form-urlencoded;charset=UTF-8',
    ]);
  });
});

describe('fetch with an AbortSignal', () => {
  it('rejects with an AbortError when the signal aborts, and the host cancels the request, freeing its place', async () => {
    Object.assign(hanging, { started: 0, closed: 0 });
    // Sixteen is as many as may be in flight: the seventeenth gets through only if the aborted ones ended.
    const code = `module.exports = async (req) => {
      const controller = new AbortController();
      const hung = Array.from({ length: 16 }, () => fetch(req.args.base + '/hang', { signal: controller.signal }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      controller.abort();
      const errors = await Promise.all(hung.map((p) => p.then(() => null, (e) => [e.name, e.message, e instanceof DOMException])));
      const next = await (await fetch(req.args.base + '/echo')).json();
      return { raw: { first: errors[0], same: errors.every((e) => JSON.stringify(e) === JSON.stringify(errors[0])), next: next.method } };
    };`;
    expect(rawOf(await invoke(open, code, { args: { base }, timeoutMs: 5_000 }))).toEqual({
      first: ['AbortError', 'This operation was aborted', true],
      same: true,
      next: 'GET',
    });
    await until('the aborted requests to close', () => (hanging.closed === 16 ? true : undefined), 5_000);
  });

  it('rejects at once, without a request, for a signal aborted before; AbortSignal.timeout ends it with a TimeoutError', async () => {
    const code = `module.exports = async (req) => {
      const reason = (promise) => promise.then(() => 'answered', (e) => e.name + ': ' + e.message);
      return { raw: {
        before: await reason(fetch(req.args.base + '/never-sent', { signal: AbortSignal.abort() })),
        timeout: await reason(fetch(req.args.base + '/hang', { signal: AbortSignal.timeout(100) })),
      } };
    };`;
    expect(rawOf(await invoke(open, code, { args: { base } }))).toEqual({
      before: 'AbortError: This operation was aborted',
      timeout: 'TimeoutError: The operation was aborted due to timeout',
    });
    expect(seen.some((request) => request.url === '/never-sent')).toBe(false);
  });
});

describe('fetch: host resources', () => {
  it('has at most 16 fetches of one run in flight; the rest wait their turn and all finish', async () => {
    Object.assign(held, { now: 0, most: 0, releasing: false });
    const code = `module.exports = async (req) => {
      const texts = await Promise.all(Array.from({ length: 40 }, () => fetch(req.args.url).then((r) => r.text())));
      return { raw: texts.filter((t) => t === 'done').length };
    };`;
    const run = invoke(open, code, { args: { url: `${base}/held` } });
    // The server holds every answer: 16 arrive, and no 17th while they are held.
    await until('16 fetches in flight', () => (held.now === 16 ? true : undefined), 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(held.most).toBe(16);
    releaseHeld();
    expect(rawOf(await run)).toBe(40);
    expect(held.most).toBe(16);
  });

  /**
   * Makes `count` fetches to the server's held path (none ends while the run lasts) with these `init` options, and
   * returns the messages of those refused at once.
   */
  async function refusedWhileHeld(count: number, init = '{}'): Promise<string[]> {
    Object.assign(held, { now: 0, most: 0, releasing: false });
    const code = `module.exports = async (req) => {
      const init = ${init};
      const refused = [];
      for (let i = 0; i < ${count}; i++) fetch(req.args.url, init).catch((e) => refused.push(e.message));
      await new Promise((r) => setTimeout(r, 300));
      return { raw: refused };
    };`;
    const refused = rawOf(await invoke(open, code, { args: { url: `${base}/held` } })) as string[];
    releaseHeld();
    return refused;
  }

  it('refuses a fetch past 16 in flight and 1,000 waiting, at once and with a clear message', async () => {
    // None of the first 16 ends while the run lasts (the server holds them), so exactly 4 are refused.
    const refused = await refusedWhileHeld(1020);
    expect(refused).toHaveLength(4);
    expect(refused[0]).toBe(
      'fetch refused: 16 fetch or req.bt calls of this run are in flight and 1000 more are waiting',
    );
  });

  it('refuses a fetch once the calls a run has in flight or waiting would carry more than 32 MB', async () => {
    const refused = await refusedWhileHeld(40, "{ method: 'POST', body: 'x'.repeat(1024 * 1024) }");
    // Each call carries a little over 1 MB of JSON: 31 fit in 32 MB (16 in flight, 15 waiting), the other 9 do not.
    expect(refused).toHaveLength(9);
    expect(new Set(refused)).toEqual(
      new Set([
        'fetch refused: the fetch and req.bt calls of this run in flight or waiting would carry more than 32 MB',
      ]),
    );
  });

  it("names a network failure by its code, never with Node's message (OpenSSL's holds a host address)", async () => {
    const code =
      'module.exports = async (req) => { try { await fetch(req.args.url); return { raw: null } } catch (e) { return { raw: e.message } } }';
    const tlsToPlainHttp = rawOf(await invoke(open, code, { args: { url: base.replace('http:', 'https:') } }));
    expect(tlsToPlainHttp).toBe('fetch failed: the TLS handshake failed (EPROTO)');
    const refused = rawOf(await invoke(open, code, { args: { url: 'http://127.0.0.1:1/' } }));
    expect(refused).toBe('fetch failed: the connection was refused (ECONNREFUSED)');
  });
});

describe('req.bt', () => {
  const bt = () => ({ endpoint: `${base}/graphql`, apiKey: 'key_secret_123' });

  it('creates and retrieves tokens through the gateway with the application key, which the formula never sees', async () => {
    const code = `module.exports = async (req) => {
  const created = await req.bt.tokens.create({ type: 'token', data: 'x' });
  const fetched = await req.bt.tokens.retrieve(created.id);
  return { raw: { created, fetched, sees: JSON.stringify(req) } };
};`;
    const raw = rawOf(await invoke(closed, code, { bt: bt() })) as { created: unknown; fetched: unknown; sees: string };
    expect(raw.created).toEqual({ id: 'tok-1', type: 'token' });
    expect(raw.fetched).toEqual({ id: 'tok-1', type: 'token', data: 'secret' });
    expect(raw.sees).not.toContain('key_secret_123');
    // Lower case, as in a formula's tokenize block, is sent as the GraphQL enum's upper case.
    expect(seen.some((s) => s.url === '/graphql' && s.body.includes('"type":"TOKEN"'))).toBe(true);
    expect(seen.filter((s) => s.url === '/graphql').every((s) => s.auth === 'Bearer key_secret_123')).toBe(true);
  });

  it('throws an error carrying the code of a failed createToken', async () => {
    const code = `module.exports = async (req) => { try { await req.bt.tokens.create({ type: 'bad' }) } catch (e) { return { raw: { code: e.code, status: e.status, message: e.message } } } }`;
    expect(rawOf(await invoke(closed, code, { bt: bt() }))).toEqual({
      code: 'BAD_REQUEST',
      status: 400,
      message: 'bad token',
    });
  });
});
