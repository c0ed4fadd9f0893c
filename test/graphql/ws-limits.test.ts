import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { rawSocket } from '../support/ws.ts';
import { grantPrivateKey } from '../tokens/support.ts';

// What one graphql-ws socket may take: messages no larger than an HTTP body, and a bounded number of operations.
let gateway: TestGateway;
let server: RunningServer;
let key: string;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { WS_MAX_OPERATIONS: '3' } });
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  const tenant = await gateway.createTenant('Limits');
  // The sockets subscribe to reactorEvents, which needs reactor:read.
  await grantPrivateKey(gateway, tenant, ['reactor:read']);
  key = tenant.privateKey;
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
/** Waits until `received` holds at least `count` messages, then a little longer for any extra one. */
async function receivedAtLeast(received: unknown[], count: number): Promise<void> {
  await until(`${count} messages`, () => (received.length >= count ? true : undefined), 10_000);
  await settle();
}

describe('a graphql-ws socket', () => {
  it('takes a message as large as an HTTP body, and closes with 1009 on a larger one', async () => {
    const limit = gateway.app.config.limits.maxArgsBytes + 1024 * 1024;
    const message = (bytes: number) =>
      JSON.stringify({
        type: 'subscribe',
        id: '1',
        payload: { query: '{ __typename }', variables: { unused: 'x'.repeat(bytes) } },
      });
    const within = await rawSocket(server.url, key);
    within.socket.send(message(1024 * 1024));
    await receivedAtLeast(within.received, 3);
    expect(within.received.map((received) => received.type)).toEqual(['connection_ack', 'next', 'complete']);
    within.socket.close();
    // A client's oversized frame is the gateway's log line to write, not graphql-ws's console.error with a stack.
    const printed = vi.spyOn(console, 'error');
    try {
      const over = await rawSocket(server.url, key);
      over.socket.send(message(limit));
      expect(await over.closed).toBe(1009);
      await settle();
      expect(printed).not.toHaveBeenCalled();
    } finally {
      printed.mockRestore();
    }
  });

  it('runs at most WS_MAX_OPERATIONS operations at once; one more is refused, and the socket stays open', async () => {
    const { socket, received, subscribe } = await rawSocket(server.url, key);
    for (const id of ['1', '2', '3', '4']) subscribe(id, 'subscription { reactorEvents { type } }');
    await receivedAtLeast(received, 2);
    expect(received.slice(1)).toEqual([
      {
        id: '4',
        type: 'error',
        payload: [
          {
            message: 'At most 3 operations may run at once on one graphql-ws socket; end some, or open another.',
            extensions: { code: 'BAD_REQUEST', status: 400 },
          },
        ],
      },
    ]);
    // Ending one makes room for another.
    socket.send(JSON.stringify({ id: '1', type: 'complete' }));
    await settle();
    subscribe('5', '{ __typename }');
    await receivedAtLeast(received, 4);
    expect(received.slice(2)).toEqual([
      { id: '5', type: 'next', payload: { data: { __typename: 'Query' } } },
      { id: '5', type: 'complete' },
    ]);
    socket.close();
  });
});
