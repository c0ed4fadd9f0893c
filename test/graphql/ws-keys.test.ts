import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { rawSocket } from '../support/ws.ts';
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

async function deleteApplicationOf(tenant: TestTenant, name: string): Promise<void> {
  const apps = await gateway.gql<any>('{ applications { edges { node { id name } } } }', {}, tenant.managementKey);
  const id = apps.data?.applications.edges.find((edge: any) => edge.node.name === name)?.node.id;
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
    const { closed, subscribe, received } = await rawSocket(quick.url, tenant.privateKey);
    subscribe('1', 'subscription { reactorEvents { type } }');
    expect(await within(closed, 1_000)).toBe('still open');
    subscribe('2', '{ reactors { totalCount } }');
    await until('the answer', () => (received.length >= 3 ? true : undefined), 10_000);
    expect(received.at(-2)).toEqual({ id: '2', type: 'next', payload: { data: { reactors: { totalCount: 0 } } } });
  });
});
