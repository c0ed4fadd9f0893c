import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type RunningServer, startServer } from '../../src/server.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { collect, rawSocket } from '../support/ws.ts';
import { applicationKey } from '../tokens/support.ts';

// A graphql-ws socket lives as long as its client wants; the key it connected with may not (src/graphql/ws-keys.ts).
let gateway: TestGateway;
let quick: RunningServer;
let slow: RunningServer;
beforeAll(async () => {
  gateway = await startTestGateway();
  // Open sockets' keys checked every 200 ms here, and (as good as) never there.
  quick = await startServer(gateway.app, { port: 0, host: '127.0.0.1', keyRecheckMs: 200 });
  slow = await startServer(gateway.app, { port: 0, host: '127.0.0.1', keyRecheckMs: 600_000 });
});
afterAll(async () => {
  await quick?.close();
  await slow?.close();
  await gateway?.close();
});

async function applicationIdOf(tenant: TestTenant, name: string): Promise<string> {
  const apps = await gateway.gql<any>('{ applications { edges { node { id name } } } }', {}, tenant.managementKey);
  return apps.data?.applications.edges.find((edge: any) => edge.node.name === name)?.node.id;
}

async function changeApplication(tenant: TestTenant, name: string, change: string, input?: unknown): Promise<void> {
  const id = await applicationIdOf(tenant, name);
  const mutation =
    change === 'updateApplication'
      ? 'mutation($id: UUID!, $input: UpdateApplicationInput!) { updateApplication(id: $id, input: $input) { __typename } }'
      : `mutation($id: UUID!) { ${change}(id: $id) { __typename } }`;
  const changed = await gateway.gql<any>(mutation, { id, input }, tenant.managementKey);
  expect(changed.data?.[change].__typename).not.toMatch(/Error$/);
}

async function deleteApplicationOf(tenant: TestTenant, name: string): Promise<void> {
  const id = await applicationIdOf(tenant, name);
  const deleted = await gateway.gql<any>(
    'mutation($id: UUID!) { deleteApplication(id: $id) { __typename } }',
    { id },
    tenant.managementKey,
  );
  expect(deleted.data?.deleteApplication.__typename).toBe('Application');
}

const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), ms))]);

describe('the key of an open graphql-ws socket', () => {
  it('ends the subscriptions of a deleted application at the next check (4401)', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read']);
    const { closed, subscribe, received } = await rawSocket(quick.url, key);
    subscribe('1', 'subscription { reactorEvents { type } }');
    // Still open a few checks later while the key is valid.
    expect(await within(closed, 700)).toBe('still open');
    await deleteApplicationOf(tenant, 'PRIVATE reactor:read');
    expect(await within(closed, 3_000)).toBe(4401);
    expect(received.map((message) => message.type)).toEqual(['connection_ack']);
  });

  it('refuses a new operation on a socket whose application was deleted, without waiting for a check', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read']);
    const { closed, subscribe, received } = await rawSocket(slow.url, key);
    subscribe('1', '{ reactors { totalCount } }');
    await until('the answer', () => (received.length >= 3 ? true : undefined), 10_000);
    expect(received.map((message) => message.type)).toEqual(['connection_ack', 'next', 'complete']);
    await deleteApplicationOf(tenant, 'PRIVATE reactor:read');
    subscribe('2', '{ reactors { totalCount } }');
    expect(await within(closed, 3_000)).toBe(4401);
    expect(received.map((message) => message.type)).toEqual(['connection_ack', 'next', 'complete']);
  });

  it('keeps sockets whose key is still valid', async () => {
    const tenant = await gateway.createTenant();
    const { closed, subscribe, received } = await rawSocket(quick.url, tenant.managementKey);
    subscribe('1', 'subscription { reactorEvents { type } }');
    expect(await within(closed, 1_000)).toBe('still open');
    subscribe('2', '{ reactors { totalCount } }');
    await until('the answer', () => (received.length >= 3 ? true : undefined), 10_000);
    expect(received.at(-2)).toEqual({ id: '2', type: 'next', payload: { data: { reactors: { totalCount: 0 } } } });
  });

  it('ends the sockets of a regenerated key (4401)', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read']);
    const { closed, subscribe } = await rawSocket(quick.url, key);
    subscribe('1', 'subscription { reactorEvents { type } }');
    expect(await within(closed, 500)).toBe('still open');
    await changeApplication(tenant, 'PRIVATE reactor:read', 'regenerateApplicationKey');
    expect(await within(closed, 3_000)).toBe(4401);
  });

  it('ends the sockets of a key whose permissions changed (4403), and keeps them through a rename', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read', 'token:read']);
    const { closed, subscribe } = await rawSocket(quick.url, key);
    subscribe('1', 'subscription { reactorEvents { type } }');
    const grant = { permissions: ['token:read', 'reactor:read'] };
    await changeApplication(tenant, 'PRIVATE reactor:read token:read', 'updateApplication', {
      name: 'Renamed',
      ...grant,
    });
    expect(await within(closed, 1_000)).toBe('still open');
    await changeApplication(tenant, 'Renamed', 'updateApplication', { name: 'Renamed', permissions: ['token:read'] });
    expect(await within(closed, 3_000)).toBe(4403);

    // Connected again, the key holds what it holds now.
    const again = await rawSocket(quick.url, key);
    again.subscribe('1', 'subscription { reactorEvents { type } }');
    await until('the answer', () => (again.received.length >= 2 ? true : undefined), 10_000);
    expect(again.received[1]).toMatchObject({
      type: 'next',
      payload: { errors: [{ extensions: { code: 'FORBIDDEN' } }] },
    });
    again.socket.close();
  });

  it('refuses a new operation after a permission change without waiting for a check; a graphql-ws client reconnects', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read', 'token:read']);
    const connections: string[] = [];
    const client = createClient({
      url: slow.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { apiKey: key },
      lazy: false,
      retryAttempts: 3,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 50)),
      on: {
        connected: () => connections.push('connected'),
        closed: (event: any) => connections.push(String(event.code)),
      },
    });
    const count = async () => {
      const { values, errors } = await collect(client, '{ reactors { totalCount } }', {});
      return errors.length > 0 ? errors : values;
    };
    expect(await count()).toEqual([{ reactors: { totalCount: 0 } }]);
    await changeApplication(tenant, 'PRIVATE reactor:read token:read', 'updateApplication', {
      name: 'Tokens only',
      permissions: ['token:read'],
    });
    // The first try meets the changed key on the old socket (4403); the client connects again and gets its answer.
    const answer = (await count()) as any[];
    expect(answer[0].extensions?.code ?? answer[0].message).toBe('FORBIDDEN');
    expect(connections).toEqual(['connected', '4403', 'connected']);
    await client.dispose();
  });
});
