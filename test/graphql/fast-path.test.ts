import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGraphQLFastPath, maxRequestBodyBytes } from '../../src/graphql/fast-path.ts';
import { type RunningServer, startServer } from '../../src/server.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

/**
 * The fast path (src/graphql/fast-path.ts) must answer exactly as Yoga's own node handler. One app, two servers:
 * one routes through the fast path (and counts what it took), the other (`fastPath: false`) sends everything to
 * Yoga. Each request goes to both; status, content-type and body bytes must match. Requests are raw node:http so
 * that headers such as `accept` are exactly what the case says (fetch would add its own).
 */

interface RawResponse {
  status: number;
  contentType: string | undefined;
  body: string;
}

let gateway: TestGateway;
let fast: { url: string; close(): Promise<void> };
let taken = 0;
let yogaOnly: RunningServer;
let tenant: TestTenant;
const EXPLODING_KEY = 'key_explodes-inside-authentication';
const REJECTING_KEY = 'key_rejects-inside-authentication';

beforeAll(async () => {
  gateway = await startTestGateway();
  // An unexpected failure (a broken database, say) inside the context factory: its message must never leak,
  // whether it is thrown at once (the synchronous, cached path) or comes as a rejected lookup.
  const auth = gateway.app.services.auth;
  const authenticateNow = auth.authenticateNow.bind(auth);
  auth.authenticateNow = (key) => {
    if (key === EXPLODING_KEY) throw new Error('connection to 10.0.0.7 refused (secret detail)');
    if (key === REJECTING_KEY) return Promise.reject(new Error('connection to 10.0.0.7 refused (secret detail)'));
    return authenticateNow(key);
  };
  fast = await startFastPathServer();
  yogaOnly = await startServer(gateway.app, { port: 0, host: '127.0.0.1', fastPath: false });
  tenant = await gateway.createTenant('Fast path');
});

afterAll(async () => {
  await fast?.close();
  await yogaOnly?.close();
  await gateway?.close();
});

/** Like startServer's routing, but counting the requests the fast path answered itself. */
async function startFastPathServer() {
  const { yoga, config } = gateway.app;
  const fastPath = createGraphQLFastPath(yoga, { maxBodyBytes: maxRequestBodyBytes(config.limits.maxArgsBytes) });
  const server = http.createServer((req, res) => {
    const serverContext = { requestId: crypto.randomUUID() };
    if (fastPath(req, res, serverContext)) taken++;
    else void yoga(req, res, serverContext);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function send(server: { url: string }, body: string | Buffer, headers: Record<string, string>, method = 'POST') {
  const url = new URL(server.url);
  return new Promise<RawResponse>((resolve, reject) => {
    const request = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method, headers: { ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: response.headers['content-type'],
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/**
 * Sends the same bytes to both servers and returns the fast path's answer once it equals Yoga's. Unless the case
 * is one the fast path hands to Yoga (`handedOver`), the fast path must have answered it itself: otherwise the
 * comparison would be Yoga against Yoga.
 */
async function sameAnswer(
  body: string | Buffer,
  headers: Record<string, string> = {},
  method = 'POST',
  { handedOver = false } = {},
) {
  const json = { 'content-type': 'application/json', ...headers };
  const before = taken;
  const [viaFastPath, viaYoga] = await Promise.all([
    send(fast, body, json, method),
    send(yogaOnly, body, json, method),
  ]);
  expect(viaFastPath).toEqual(viaYoga);
  const fastPath = taken > before;
  expect(fastPath).toBe(!handedOver);
  return { ...viaFastPath, fastPath };
}

const operation = (query: string, extra: Record<string, unknown> = {}) => JSON.stringify({ query, ...extra });
const VIEWER = '{ viewer { tenant { id name } application { type } } }';

describe('the fast path answers exactly as Yoga', () => {
  it('for a trivial query', async () => {
    const answer = await sameAnswer(operation('{ __typename }'));
    expect(answer).toEqual({
      status: 200,
      contentType: 'application/json; charset=utf-8',
      body: '{"data":{"__typename":"Query"}}',
      fastPath: true,
    });
  });

  it('for an authenticated query, with the key as BT-API-KEY or Bearer', async () => {
    const answer = await sameAnswer(operation(VIEWER), { 'bt-api-key': tenant.managementKey });
    expect(JSON.parse(answer.body).data.viewer.tenant.name).toBe('Fast path');
    await sameAnswer(operation(VIEWER), { authorization: `Bearer ${tenant.privateKey}` });
  });

  it('for a missing key (UNAUTHENTICATED) and a key without the permission (FORBIDDEN)', async () => {
    const missing = await sameAnswer(operation(VIEWER));
    expect(JSON.parse(missing.body).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(missing.fastPath).toBe(true);
    const forbidden = await sameAnswer(operation('{ applications { edges { node { id } } } }'), {
      'bt-api-key': tenant.privateKey,
    });
    expect(JSON.parse(forbidden.body).errors[0].extensions.code).toBe('FORBIDDEN');
  });

  it('for a syntax error, a validation error and an unknown field', async () => {
    expect((await sameAnswer(operation('{ viewer {'))).body).toContain('Syntax Error');
    // A variable of the wrong type is the client's mistake: BAD_REQUEST with graphql-js's message, and a 400 where
    // the GraphQL-over-HTTP spec asks for one (application/graphql-response+json).
    await sameAnswer(operation('query ($n: Int) { __typename }', { variables: { n: 'not a number' } }));
    const mistyped = operation('query ($n: Int) { reactors(first: $n) { totalCount } }', { variables: { n: 'x' } });
    const asJson = await sameAnswer(mistyped);
    expect(asJson.status).toBe(200);
    expect(JSON.parse(asJson.body).errors).toEqual([
      {
        message: 'Variable "$n" got invalid value "x"; Int cannot represent non-integer value: "x"',
        locations: [{ line: 1, column: 8 }],
        extensions: { code: 'BAD_REQUEST', status: 400 },
      },
    ]);
    const asGraphQLResponse = await sameAnswer(mistyped, { accept: 'application/graphql-response+json' });
    expect(asGraphQLResponse.status).toBe(400);
    // So is a required variable left out or sent as null (graphql-js raises these without a cause to unwrap).
    const required = 'query ($id: UUID!) { reactor(id: $id) { id } }';
    for (const [variables, message] of [
      [{}, 'Variable "$id" of required type "UUID!" was not provided.'],
      [{ id: null }, 'Variable "$id" of non-null type "UUID!" must not be null.'],
    ] as const) {
      const answer = await sameAnswer(operation(required, { variables }), {
        'bt-api-key': tenant.privateKey,
        accept: 'application/graphql-response+json',
      });
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).errors).toEqual([
        { message, locations: [{ line: 1, column: 8 }], extensions: { code: 'BAD_REQUEST', status: 400 } },
      ]);
    }
    expect((await sameAnswer(operation('{ noSuchField }'))).body).toContain('noSuchField');
  });

  it('for queries over the limits (aliases, directives, tokens, depth), twice each: the second answer is cached', async () => {
    const limits = [
      // No valid query of this schema nests 13 levels outside introspection (which armor exempts); the depth rule does
      // not need the fields to exist, so unknown ones reach it.
      [`{ ${'a { '.repeat(13)}b${' }'.repeat(13)} }`, 'Query depth limit of 12 exceeded'],
      [`{ ${Array.from({ length: 31 }, (_, i) => `a${i}: viewer { tenant { id } }`).join(' ')} }`, 'Aliases limit'],
      [`{ __typename ${'@skip(if: false) '.repeat(60)}}`, 'Directives limit'],
      [`{ ${'__typename '.repeat(1001)}}`, 'Token limit'],
    ];
    for (const [query, message] of limits) {
      const first = await sameAnswer(operation(query!));
      expect(first.body).toContain(message);
      expect(await sameAnswer(operation(query!))).toEqual(first);
    }
  });

  it('for variables and operationName', async () => {
    const document = 'query A { __typename } query B($id: UUID!) { reactor(id: $id) { id } }';
    await sameAnswer(operation(document, { operationName: 'A' }));
    await sameAnswer(
      operation(document, { operationName: 'B', variables: { id: '00000000-0000-4000-8000-000000000000' } }),
      {
        'bt-api-key': tenant.managementKey,
      },
    );
    await sameAnswer(operation(document, { operationName: 'Missing' }));
    await sameAnswer(operation(document));
  });

  it('for each accept header, twice (the second answer uses the remembered negotiation)', async () => {
    const invalid = operation('{ noSuchField }');
    for (const accept of [
      'application/json',
      'application/graphql-response+json',
      '*/*',
      'application/graphql-response+json, application/json;q=0.9',
      'text/html',
      'application/json; charset=iso-8859-1',
    ]) {
      for (let i = 0; i < 2; i++) {
        await sameAnswer(operation('{ __typename }'), { accept });
        await sameAnswer(invalid, { accept });
      }
    }
    const strict = await sameAnswer(invalid, { accept: 'application/graphql-response+json' });
    expect(strict).toMatchObject({ status: 400, fastPath: true });
  });

  it('for a body that is not JSON, not an object, a batch, or has unknown params', async () => {
    const malformed = await sameAnswer('{"query": "{ __typename }"');
    expect(malformed.status).toBe(400);
    await sameAnswer('"just a string"');
    await sameAnswer('null');
    await sameAnswer(`[${operation('{ __typename }')}]`);
    await sameAnswer(JSON.stringify({ query: '{ __typename }', unexpected: 1 }));
    await sameAnswer(JSON.stringify({ query: 42 }));
    await sameAnswer(JSON.stringify({ variables: {} }));
    await sameAnswer(JSON.stringify({ query: '{ __typename }', variables: [1] }));
  });

  it('for an unexpected error, masked without its message', async () => {
    for (const key of [EXPLODING_KEY, REJECTING_KEY]) {
      const answer = await sameAnswer(operation(VIEWER), { 'bt-api-key': key });
      expect(answer.body).toContain('Unexpected error.');
      expect(answer.body).not.toContain('10.0.0.7');
    }
  });

  it('for what it hands to Yoga: GET, other content types, CORS and a body over the limit', async () => {
    const yoga = { handedOver: true };
    const handedOver = [
      await sameAnswer('', {}, 'GET', yoga),
      await sameAnswer('{ __typename }', { 'content-type': 'application/graphql' }, 'POST', yoga),
      await sameAnswer(operation('{ __typename }'), { origin: 'https://app.example' }, 'POST', yoga),
      await sameAnswer(operation('{ __typename }'), { accept: 'text/event-stream' }, 'POST', yoga),
    ];
    for (const answer of handedOver) expect(answer.fastPath).toBe(false);
    const limit = gateway.app.config.limits.maxArgsBytes + 1024 * 1024;
    const oversized = await sameAnswer(
      operation('{ __typename }', { extensions: { pad: 'x'.repeat(limit) } }),
      {},
      'POST',
      yoga,
    );
    expect(oversized).toMatchObject({ status: 413, fastPath: false });
  });

  it('accepts a body of 5 MB of variables', async () => {
    const big = 'x'.repeat(5 * 1024 * 1024);
    const answer = await sameAnswer(
      operation('query ($s: String!) { __type(name: $s) { name } }', { variables: { s: big } }),
    );
    expect(answer).toMatchObject({ status: 200, body: '{"data":{"__type":null}}', fastPath: true });
  });
});
