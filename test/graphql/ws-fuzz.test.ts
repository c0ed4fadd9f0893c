import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type RunningServer, startServer } from '../../src/server.ts';
import { fuzzSettings } from '../support/fuzz.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { jsonArb, stringArb } from '../support/schema-fuzz.ts';
import { collect, wsClient } from '../support/ws.ts';
import { grantPrivateKey } from '../tokens/support.ts';

/**
 * graphql-ws (subprotocol graphql-transport-ws) under generated sessions over a real socket: a connection_init with
 * a good, a wrong or a generated payload (or none), then subscribe, complete, ping and pong messages of any shape,
 * JSON that is no message, and bytes. The protocol's own close codes (4400, 4401, 4409, ...) are the answers to
 * protocol mistakes; a GraphQL mistake is an `error` message for its operation. No session may be closed with 4500
 * ("Internal server error") or 1011, no answer may be "Unexpected error.", and every error sent carries a code.
 */

const { seed: SEED, runs: RUNS } = fuzzSettings(150);
/** How long a session stays open after its last message, for the answers to arrive. */
const QUIET_MS = 60;

let gateway: TestGateway;
let server: RunningServer;
let key: string;
beforeAll(async () => {
  gateway = await startTestGateway();
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  const tenant = await gateway.createTenant('WS');
  // The generated sessions subscribe to reactorEvents, which needs reactor:read.
  await grantPrivateKey(gateway, tenant, ['reactor:read']);
  key = tenant.privateKey;
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

const UUID = '01a204cc-a83d-77b0-9658-e28eab878399';
const QUERIES = [
  'subscription { reactorEvents { type reactor { id } } }',
  'subscription($id: UUID) { reactorEvents(reactorId: $id) { type } }',
  'subscription($r: UUID!) { reactorResult(requestId: $r) { status } }',
  '{ __typename }',
  '{ viewer { tenant { id } } }',
  'mutation { createTransaction { id } }',
  'query A { __typename } query B { __typename }',
  'subscription {',
  `{ ${'viewer { tenant { '.repeat(14)}id${' } }'.repeat(14)} }`,
  `{ ${'__typename '.repeat(1001)}}`,
];

const GOOD_KEY = 'the-tenant-key';
const init = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ type: 'connection_init', payload: { apiKey: GOOD_KEY } }) },
  { weight: 1, arbitrary: fc.constant({ type: 'connection_init', payload: { apiKey: 'nope' } }) },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('connection_init'), payload: jsonArb }, { requiredKeys: ['type'] }),
  },
  { weight: 1, arbitrary: fc.constant(null) },
);
const id = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('1', '2', 'a') }, { weight: 1, arbitrary: stringArb });
const variables = fc.oneof(
  fc.constant({ id: UUID, r: UUID }),
  fc.constant({ id: 'not-a-uuid' }),
  fc.constant({}),
  fc.dictionary(fc.constantFrom('id', 'r'), jsonArb),
);
// Mostly payloads the protocol accepts, so that the sessions get as far as GraphQL; some of any shape.
const payload = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        query: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...QUERIES) }, { weight: 1, arbitrary: stringArb }),
        variables,
        operationName: fc.oneof(
          { weight: 3, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.constantFrom('A', 'B', 'Nope') },
        ),
      },
      { requiredKeys: ['query'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        query: fc.oneof(fc.constantFrom(...QUERIES), stringArb),
        variables: jsonArb,
        operationName: stringArb,
        extensions: jsonArb,
      },
      { requiredKeys: [] },
    ),
  },
);
const subscribe = fc.record({ type: fc.constant('subscribe'), id, payload });
const message = fc.oneof(
  { weight: 12, arbitrary: subscribe.map((value) => JSON.stringify(value)) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('complete'), id }).map((value) => JSON.stringify(value)) },
  {
    weight: 1,
    arbitrary: fc
      .record({ type: fc.constantFrom('ping', 'pong'), payload: jsonArb }, { requiredKeys: ['type'] })
      .map((value) => JSON.stringify(value)),
  },
  { weight: 1, arbitrary: jsonArb.map((value) => JSON.stringify(value)) },
  { weight: 1, arbitrary: stringArb },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)) },
);

interface Session {
  received: string[];
  closed: { code: number; reason: string } | null;
}

/** One socket: the init (waiting for its answer), then the messages, then QUIET_MS of listening. */
async function run(first: unknown, messages: (string | Buffer)[]): Promise<Session> {
  const socket = new WebSocket(server.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  const session: Session = { received: [], closed: null };
  let answered = () => {};
  socket.on('message', (data) => {
    session.received.push(String(data));
    answered();
  });
  const closed = new Promise<void>((resolve) =>
    socket.once('close', (code, reason) => {
      session.closed = { code, reason: String(reason) };
      resolve();
    }),
  );
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const settle = (ms: number) => Promise.race([closed, new Promise((resolve) => setTimeout(resolve, ms))]);
  if (first !== null) {
    socket.send(JSON.stringify(first).replace(GOOD_KEY, key));
    // The ack (or the close) comes once the key is checked; a subscribe sent before it would be a 4401.
    await Promise.race([closed, new Promise<void>((resolve) => (answered = resolve)), settle(2_000)]);
  }
  for (const sent of messages) {
    if (session.closed) break;
    socket.send(sent);
  }
  await settle(QUIET_MS);
  socket.close();
  await closed;
  return session;
}

/** What is wrong with a session's answers, if anything. */
function problems(session: Session): string[] {
  const found: string[] = [];
  if (session.closed && [1011, 4500].includes(session.closed.code)) {
    found.push(`closed ${session.closed.code} ${session.closed.reason}`);
  }
  for (const text of session.received) {
    if (text.includes('Unexpected error')) found.push(text.slice(0, 300));
    const parsed = JSON.parse(text) as { type: string; payload?: any };
    const errors = parsed.type === 'error' ? parsed.payload : parsed.type === 'next' ? parsed.payload?.errors : [];
    for (const error of errors ?? []) {
      if (typeof error?.extensions?.code !== 'string') found.push(`no code: ${text.slice(0, 300)}`);
    }
  }
  return found;
}

describe('generated graphql-ws sessions', () => {
  it('never end in a server error, and every error they get carries a code', async () => {
    const failures: unknown[] = [];
    await fc.assert(
      fc.asyncProperty(init, fc.array(message, { minLength: 1, maxLength: 5 }), async (first, messages) => {
        const session = await run(first, messages);
        const found = problems(session);
        if (found.length > 0) failures.push({ first, messages: messages.map(String), found });
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(failures.slice(0, 5)).toEqual([]);
    // The server still serves a well-behaved client.
    const client = wsClient(server.url, key);
    try {
      const outcome = await collect(client, 'subscription { reactorEvents { type } }', {}, { timeoutMs: 300 });
      expect(outcome).toEqual({ values: [], errors: [], completed: false });
    } finally {
      await client.dispose();
    }
    expect((await fetch(new URL('/health', server.url))).status).toBe(200);
  });

  it('answers GraphQL mistakes as an error message for the operation, with the code HTTP would give', async () => {
    const errorOf = async (payload: Record<string, unknown>) => {
      const session = await run({ type: 'connection_init', payload: { apiKey: GOOD_KEY } }, [
        JSON.stringify({ type: 'subscribe', id: '1', payload }),
      ]);
      expect(session.closed).toEqual({ code: 1005, reason: '' });
      return JSON.parse(session.received[1]!);
    };
    expect(await errorOf({ query: 'subscription {' })).toEqual({
      id: '1',
      type: 'error',
      payload: [
        {
          message: 'Syntax Error: Expected Name, found <EOF>.',
          locations: [{ line: 1, column: 15 }],
          extensions: { code: 'GRAPHQL_PARSE_FAILED' },
        },
      ],
    });
    const overLimits = await errorOf({ query: QUERIES[8] });
    expect(overLimits.type).toBe('error');
    expect(overLimits.payload).toContainEqual({
      message: 'Syntax Error: Query depth limit of 12 exceeded, found 29.',
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
    });
    expect(await errorOf({ query: QUERIES[6], operationName: 'Nope' })).toEqual({
      id: '1',
      type: 'error',
      payload: [
        {
          message: 'Could not determine what operation to execute.',
          extensions: { code: 'OPERATION_RESOLUTION_FAILURE' },
        },
      ],
    });
  });
});
