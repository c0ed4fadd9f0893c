import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { collect, wsClient } from '../support/ws.ts';
import { grantPrivateKey } from '../tokens/support.ts';

// graphql-ws subscriptions bypass envelop's subscribe (src/graphql/ws-subscribe.ts): these pin what a client sees
// on each path through it (the answers were recorded with the envelop path and are unchanged).
let gateway: TestGateway;
let server: RunningServer;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  tenant = await gateway.createTenant();
  // Subscriptions to reactorEvents and the reactor queries need reactor:read, which a PRIVATE key holds only if named.
  await grantPrivateKey(gateway, tenant, ['reactor:read']);
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

const UNKNOWN_ID = '01a204cc-a83d-77b0-9658-e28eab878399';
const EVENTS = 'subscription($id: UUID) { reactorEvents(reactorId: $id) { type reactor { id } } }';

describe('graphql-ws subscriptions', () => {
  it('ends with the masked domain error when the stream throws (unknown request)', async () => {
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const outcome = await collect(
        client,
        'subscription($r: UUID!) { reactorResult(requestId: $r) { status } }',
        { r: UNKNOWN_ID },
        { timeoutMs: 5_000 },
      );
      expect(outcome).toEqual({
        values: [],
        errors: [
          [
            {
              message: 'Reactor request not found.',
              extensions: { code: 'NOT_FOUND', status: 404, detail: null, errors: null },
            },
          ],
        ],
        completed: false,
      });
    } finally {
      await client.dispose();
    }
  });

  it('answers a setup error (a variable that is not a UUID) as one BAD_REQUEST result, then completes', async () => {
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const outcome = await collect(client, EVENTS, { id: 'not-a-uuid' }, { timeoutMs: 5_000 });
      expect(outcome).toEqual({
        values: [],
        errors: [
          {
            message: 'Variable "$id" got invalid value "not-a-uuid"; Value is not a valid UUID: not-a-uuid',
            locations: [{ line: 1, column: 14 }],
            extensions: { code: 'BAD_REQUEST', status: 400 },
          },
        ],
        completed: true,
      });
    } finally {
      await client.dispose();
    }
  });

  it('refuses an invalid document with validation errors', async () => {
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const { values, errors } = await collect(
        client,
        'subscription { reactorEvents { nope } }',
        {},
        { timeoutMs: 5_000 },
      );
      expect(values).toEqual([]);
      expect(errors).toEqual([
        [expect.objectContaining({ extensions: expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED' }) })],
      ]);
      // Yoga's `extensions.http` (the HTTP status it would answer with) means nothing on a socket.
      expect((errors as any)[0][0].extensions).not.toHaveProperty('http');
    } finally {
      await client.dispose();
    }
  });

  it('serves queries and mutations on the same socket as subscriptions', async () => {
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const query = await collect(client, `{ reactor(id: "${UNKNOWN_ID}") { id } }`, {});
      expect(query).toEqual({ values: [{ reactor: null }], errors: [], completed: true });
      const mutation = await collect(
        client,
        `mutation { react(id: "${UNKNOWN_ID}") { __typename ... on Error { code } } }`,
        {},
      );
      expect(mutation.values).toEqual([{ react: { __typename: 'NotFoundError', code: 'NOT_FOUND' } }]);
    } finally {
      await client.dispose();
    }
  });

  it('takes ids in upper case as the same ids: results, events and their filters all find them', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { await new Promise((r) => setTimeout(r, 300)); return { raw: 7 }; };',
    );
    const REACTOR = reactorId.toUpperCase();
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const events = collect(client, EVENTS, { id: REACTOR }, { until: (values) => values.length >= 2 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const queued = await gateway.gql<any>(REACT_ASYNC, { id: REACTOR }, tenant.privateKey);
      const REQUEST = String(queued.data?.reactAsync.asyncReactorRequestId).toUpperCase();
      const result = await collect(
        client,
        'subscription($r: UUID!) { reactorResult(requestId: $r) { status raw } }',
        { r: REQUEST },
        { timeoutMs: 10_000 },
      );
      expect(result.completed).toBe(true);
      expect(result.values.at(-1)).toEqual({ reactorResult: { status: 'COMPLETED', raw: 7 } });
      const read = await gateway.gql<any>(
        REACTOR_RESULT,
        { reactorId: REACTOR, requestId: REQUEST },
        tenant.privateKey,
      );
      expect(read.data?.reactorResult).toMatchObject({ status: 'COMPLETED' });
      expect((await events).values.map((value: any) => value.reactorEvents)).toEqual([
        { type: 'reactor.invoked', reactor: { id: reactorId } },
        { type: 'reactor.completed', reactor: { id: reactorId } },
      ]);
    } finally {
      await client.dispose();
    }
  });

  it('multiplexes subscriptions on one socket; one the client completes gets nothing more', async () => {
    const first = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({});');
    const second = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({});');
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const received: Record<string, string[]> = { all: [], first: [], cancelled: [] };
      const listen = (name: string, id: string | null) =>
        client.subscribe(
          { query: EVENTS, variables: { id } },
          {
            next: (result) => {
              const event = (result.data as { reactorEvents?: { type: string; reactor: { id: string } } } | null)
                ?.reactorEvents;
              received[name]!.push(`${event?.type} ${event?.reactor.id === first ? 'first' : 'second'}`);
            },
            error: (error) => received[name]!.push(`error ${JSON.stringify(error)}`),
            complete: () => {},
          },
        );
      listen('all', null);
      listen('first', first);
      const cancel = listen('cancelled', null);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await gateway.gql(REACT, { id: first }, tenant.privateKey);
      await until('two events', () => (received.cancelled!.length >= 2 ? true : undefined), 10_000);
      cancel();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await gateway.gql(REACT, { id: second }, tenant.privateKey);
      await until('four events', () => (received.all!.length >= 4 ? true : undefined), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(received).toEqual({
        all: ['reactor.invoked first', 'reactor.completed first', 'reactor.invoked second', 'reactor.completed second'],
        first: ['reactor.invoked first', 'reactor.completed first'],
        cancelled: ['reactor.invoked first', 'reactor.completed first'],
      });
    } finally {
      await client.dispose();
    }
  });
});
