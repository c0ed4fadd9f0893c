import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endWhenKeyChanges } from '../../src/graphql/stream-keys.ts';
import { startServer } from '../../src/server.ts';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { applicationKey } from '../tokens/support.ts';

// A subscription over server-sent events holds its key as long as the client keeps the stream; the key it started
// with may not last that long (src/graphql/stream-keys.ts). Keys are checked again every 200 ms here.
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ keyRecheckMs: 200 });
});
afterAll(() => gateway?.close());

/** An SSE subscription to `reactorEvents`, read as it comes: the text so far, and whether the stream ended. */
async function eventStream(key: string) {
  const abort = new AbortController();
  const response = await gateway.app.yoga.fetch('http://gateway.test/graphql', {
    method: 'POST',
    signal: abort.signal,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'bt-api-key': key },
    body: JSON.stringify({ query: 'subscription { reactorEvents { type reactor { id } } }' }),
  });
  expect(response.status).toBe(200);
  const stream = { text: '', ended: false, stop: () => abort.abort() };
  const reader = response.body!.getReader();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        stream.text += Buffer.from(value).toString();
      }
    } catch {
      // Aborted by the test.
    }
    stream.ended = true;
  })();
  return stream;
}

async function applicationIdOf(tenant: TestTenant, name: string): Promise<string> {
  const apps = await gateway.gql<any>('{ applications { edges { node { id name } } } }', {}, tenant.managementKey);
  return apps.data?.applications.edges.find((edge: any) => edge.node.name === name)?.node.id;
}

async function manage(tenant: TestTenant, mutation: string, variables: Record<string, unknown>): Promise<void> {
  const answer = await gateway.gql<any>(mutation, variables, tenant.managementKey);
  expect((Object.values(answer.data ?? {})[0] as { __typename?: string })?.__typename).toMatch(/^(?!.*Error$)/);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a subscription over server-sent events', () => {
  it('goes on while its key is valid, and ends with UNAUTHENTICATED once its key is regenerated', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read', 'reactor:invoke']);
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({});');
    const stream = await eventStream(key);
    // Several checks later it is still open, and carries events.
    await pause(700);
    await gateway.gql(REACT, { id: reactorId }, key);
    await until('the event', () => (stream.text.includes('reactor.completed') ? true : undefined), 5_000);
    expect(stream.ended).toBe(false);

    const id = await applicationIdOf(tenant, 'PRIVATE reactor:read reactor:invoke');
    await manage(tenant, 'mutation($id: UUID!) { regenerateApplicationKey(id: $id) { __typename } }', { id });
    await until('the stream to end', () => (stream.ended ? true : undefined), 5_000);
    expect(stream.text).toContain('"code":"UNAUTHENTICATED"');
    expect(stream.text).toContain('no longer valid');
  });

  it('ends with FORBIDDEN once its permissions change', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read']);
    const stream = await eventStream(key);
    await pause(500);
    expect(stream.ended).toBe(false);
    const id = await applicationIdOf(tenant, 'PRIVATE reactor:read');
    await manage(
      tenant,
      'mutation($id: UUID!, $input: UpdateApplicationInput!) { updateApplication(id: $id, input: $input) { __typename } }',
      { id, input: { name: 'narrowed', permissions: ['reactor:read'], tokenContainers: ['/general/'] } },
    );
    await until('the stream to end', () => (stream.ended ? true : undefined), 5_000);
    expect(stream.text).toContain('"code":"FORBIDDEN"');
  });

  it('ends once its application is deleted', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:read']);
    const stream = await eventStream(key);
    const id = await applicationIdOf(tenant, 'PRIVATE reactor:read');
    await manage(tenant, 'mutation($id: UUID!) { deleteApplication(id: $id) { __typename } }', { id });
    await until('the stream to end', () => (stream.ended ? true : undefined), 5_000);
    expect(stream.text).toContain('"code":"UNAUTHENTICATED"');
  });
});

describe('a stopping server', () => {
  it('ends its subscriptions over server-sent events instead of waiting for their clients to leave', async () => {
    const tenant = await gateway.createTenant();
    const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'bt-api-key': tenant.privateKey },
      body: JSON.stringify({ query: 'subscription { reactorEvents { type } }' }),
    });
    expect(response.status).toBe(200);
    const text = response.text();
    const closed = server.close().then(() => 'closed');
    const outcome = await Promise.race([
      closed,
      new Promise((resolve) => setTimeout(() => resolve('still open'), 5_000)),
    ]);
    expect(outcome).toBe('closed');
    // The stream completed, as graphql-sse clients expect of a server that ends it.
    expect(await text).toContain('event: complete');
  });
});

describe('endWhenKeyChanges', () => {
  it('ends its source at once when the client goes away, though a next() is pending on it', async () => {
    let returned = false;
    let release!: () => void;
    const pending = new Promise<IteratorResult<number>>((resolve) => {
      release = () => resolve({ done: true, value: undefined });
    });
    const source: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () => pending,
        return: async () => {
          returned = true;
          release();
          return { done: true, value: undefined };
        },
      }),
    };
    const stream = endWhenKeyChanges(source, async () => null, 60_000);
    const next = stream.next();
    await stream.return?.();
    expect(returned).toBe(true);
    expect(await next).toEqual({ done: true, value: undefined });
  });

  it('stops checking the key of a stream whose source failed', async () => {
    let checks = 0;
    const failing: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('subscriber too far behind')) }),
    };
    const stream = endWhenKeyChanges(
      failing,
      async () => {
        checks++;
        return null;
      },
      20,
    );
    await expect(stream.next()).rejects.toThrow('subscriber too far behind');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(checks).toBe(0);
  });
});
