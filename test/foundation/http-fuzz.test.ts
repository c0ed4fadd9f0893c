import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { fuzzSettings } from '../support/fuzz.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { jsonArb, stringArb } from '../support/schema-fuzz.ts';

/**
 * The HTTP layer under generated requests over a real port: any method, path, content type, accept header and key,
 * with bodies that are JSON of any shape, GraphQL params of any shape, batches, or bytes. Both routes are hit (the
 * fast path for plain JSON POSTs, Yoga's handler for the rest). No answer may be a 5xx or an "Unexpected error.".
 */

const { seed: SEED, runs: RUNS } = fuzzSettings(1_000);

let gateway: TestGateway;
let server: RunningServer;
let key: string;
beforeAll(async () => {
  gateway = await startTestGateway();
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  key = (await gateway.createTenant('HTTP')).privateKey;
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

const QUERIES = [
  '{ __typename }',
  'query($a: Int) { __typename }',
  'mutation { createTransaction { id } }',
  'subscription { reactorEvents { type } }',
  '{ viewer { tenant { id } } }',
];
const params = fc
  .record(
    {
      query: fc.oneof(stringArb, fc.constantFrom(...QUERIES)),
      variables: fc.oneof(jsonArb, fc.constant({ a: 1 })),
      operationName: fc.oneof(stringArb, fc.constant(null)),
      extensions: jsonArb,
    },
    { requiredKeys: [] },
  )
  .map((value) => JSON.stringify(value));
const body = fc.oneof(
  jsonArb.map((value) => JSON.stringify(value)),
  params,
  fc.array(fc.record({ query: fc.constantFrom(...QUERIES) }), { maxLength: 3 }).map((value) => JSON.stringify(value)),
  fc.string({ unit: 'binary', maxLength: 50 }),
);
const headers = fc.record(
  {
    'content-type': fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/graphql',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'garbage',
    ),
    accept: fc.constantFrom(
      'application/json',
      'application/graphql-response+json',
      'text/event-stream',
      'multipart/mixed',
      '*/*',
      'text/html',
      'application/json;q=0',
    ),
    'bt-api-key': fc.constantFrom('key-of-the-tenant', 'nope'),
    origin: fc.constant('https://app.example'),
  },
  { requiredKeys: [] },
);
const method = fc.constantFrom('POST', 'GET', 'PUT', 'DELETE', 'OPTIONS', 'PATCH');
const path = fc.constantFrom(
  '/graphql',
  '/graphql?query=%7B__typename%7D',
  '/graphql?query=mutation%7BcreateTransaction%7Bid%7D%7D',
  '/graphql?query=%7B',
  '/graphql/x',
  '/health',
  '/ready',
  '/',
);

describe('generated HTTP requests', () => {
  it('never get a server error', async () => {
    const origin = new URL(server.url).origin;
    const failures: unknown[] = [];
    await fc.assert(
      fc.asyncProperty(body, headers, method, path, async (payload, given, verb, target) => {
        const sent = given['bt-api-key'] === 'key-of-the-tenant' ? { ...given, 'bt-api-key': key } : given;
        const response = await fetch(`${origin}${target}`, {
          method: verb,
          headers: sent,
          body: verb === 'GET' ? undefined : payload,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await response.text();
        if (response.status >= 500 || text.includes('Unexpected error')) {
          failures.push({ verb, target, sent, payload, status: response.status, text: text.slice(0, 300) });
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(failures.slice(0, 5)).toEqual([]);
    expect((await fetch(`${origin}/health`)).status).toBe(200);
  });
});
