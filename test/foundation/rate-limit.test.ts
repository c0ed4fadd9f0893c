import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { collect, wsClient } from '../support/ws.ts';

// One request every 4 s per application after a burst of 3: slow enough that no bucket refills during a test.
let gateway: TestGateway;
let server: RunningServer;
let yogaOnly: RunningServer;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { RATE_LIMIT_PER_SECOND: '0.25', RATE_LIMIT_BURST: '3' } });
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  yogaOnly = await startServer(gateway.app, { port: 0, host: '127.0.0.1', fastPath: false });
});
afterAll(async () => {
  await server?.close();
  await yogaOnly?.close();
  await gateway?.close();
});

const VIEWER = '{ viewer { tenant { id } } }';

async function post(url: string, key: string | null) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'bt-api-key': key } : {}) },
    body: JSON.stringify({ query: VIEWER }),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() };
}

describe('the per-application rate limit (RATE_LIMIT_PER_SECOND)', () => {
  it('answers RATE_LIMITED with HTTP 429 and Retry-After once an application spent its burst, on both paths', async () => {
    const tenant = await gateway.createTenant('Limited');
    for (let i = 0; i < 3; i++) expect((await post(server.url, tenant.privateKey)).status).toBe(200);
    const limited = await post(server.url, tenant.privateKey);
    const viaYoga = await post(yogaOnly.url, tenant.privateKey);
    for (const answer of [limited, viaYoga]) {
      expect(answer.status).toBe(429);
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(answer.body).toEqual({
        errors: [
          {
            message: expect.stringMatching(/^Rate limit exceeded for this application; retry after \d+ s\.$/),
            extensions: { code: 'RATE_LIMITED', status: 429, retryAfter: Number(answer.retryAfter) },
          },
        ],
      });
    }
    expect(viaYoga).toEqual({ ...limited, retryAfter: viaYoga.retryAfter });
  });

  it('counts per application: another application, even of the same tenant, is not held back', async () => {
    const tenant = await gateway.createTenant('Two applications');
    for (let i = 0; i < 4; i++) await gateway.gql(VIEWER, {}, tenant.privateKey);
    expect(errorCode(await gateway.gql(VIEWER, {}, tenant.privateKey))).toBe('RATE_LIMITED');
    const other = await gateway.gql<any>(VIEWER, {}, tenant.managementKey);
    expect(other.data?.viewer.tenant.id).toBe(tenant.tenantId);
  });

  it('does not count requests without a key (they get UNAUTHENTICATED, not RATE_LIMITED)', async () => {
    for (let i = 0; i < 5; i++) expect(errorCode(await gateway.gql(VIEWER))).toBe('UNAUTHENTICATED');
  });

  it('counts each graphql-ws subscribe and refuses one over the limit', async () => {
    const tenant = await gateway.createTenant('Subscriber');
    const client = wsClient(server.url, tenant.managementKey);
    try {
      const subscribe = () =>
        collect(client, 'subscription { reactorEvents { type } }', {}, { timeoutMs: 300 }).then(
          (outcome) => outcome.errors,
        );
      for (let i = 0; i < 3; i++) expect(await subscribe()).toEqual([]);
      const refused = (await subscribe()) as { message: string; extensions: { retryAfter: number } }[][];
      expect(refused[0]?.[0]?.extensions).toEqual({
        code: 'RATE_LIMITED',
        status: 429,
        retryAfter: expect.any(Number),
      });
      expect(refused[0]![0]!.extensions.retryAfter).toBeGreaterThanOrEqual(1);
    } finally {
      await client.dispose();
    }
  });
});
