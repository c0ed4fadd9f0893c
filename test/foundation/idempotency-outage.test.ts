import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

// Idempotent mutations (src/idempotency/handler.ts) while Postgres goes away: the connections go through a TCP proxy
// the tests cut. An embedded PGlite cannot go away, so these run in the postgres project.
describe.runIf(usingPostgres)('an idempotent mutation during a Postgres outage', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let gateway: TestGateway;
  let server: RunningServer;
  let tenant: TestTenant;
  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    gateway = await startTestGateway({
      database,
      target: { kind: 'postgres', url: proxy.url(database.url!), poolSize: 5 },
    });
    server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    tenant = await gateway.createTenant();
  });
  afterAll(async () => {
    await server?.close();
    await gateway?.close();
    await proxy?.close();
    await database?.drop();
  });

  const post = async (body: unknown, key: string) => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'bt-api-key': tenant.privateKey, 'idempotency-key': key },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      replayed: response.headers.get('idempotent-replayed'),
      body: await response.json(),
    };
  };

  it('keeps the response of a mutation that ended while the database was away, so a retry does not run it again', async () => {
    // A run that touches no table: it succeeds during the cut (its key and reactor come from the caches).
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { await new Promise((r) => setTimeout(r, 700)); return { raw: { run: Math.random() } }; };',
    );
    expect((await gateway.gql<any>(REACT, { id: reactorId }, tenant.privateKey)).data?.react.raw.run).toBeTypeOf(
      'number',
    );
    const request = { query: REACT, variables: { id: reactorId } };
    const answered = post(request, 'outage-1');
    await new Promise((resolve) => setTimeout(resolve, 250));
    await proxy.cut();
    // The run ends at 700 ms; storing its response fails until the database is back.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await proxy.restore();
    const first = await answered;
    expect(first.status).toBe(200);
    expect(first.body.data.react.raw.run).toBeTypeOf('number');
    const retry = await post(request, 'outage-1');
    expect(retry).toMatchObject({ status: 200, replayed: 'true', body: first.body });
  }, 30_000);

  it('answers 503, not 500, when the key cannot be claimed for the outage, and runs the retry once it is back', async () => {
    const request = { query: 'mutation { createTransaction { id } }' };
    // The key is known (cached) before the cut: only the claim needs the database.
    expect((await gateway.gql<any>('{ viewer { application { id } } }', {}, tenant.privateKey)).data).toBeTruthy();
    await proxy.cut();
    let during: Awaited<ReturnType<typeof post>>;
    try {
      during = await post(request, 'outage-2');
    } finally {
      await proxy.restore();
    }
    expect(during).toMatchObject({
      status: 503,
      body: { errors: [{ extensions: { code: 'SERVICE_UNAVAILABLE', status: 503 } }] },
    });
    const after = await post(request, 'outage-2');
    expect(after.status).toBe(200);
    expect(after.replayed).toBeNull();
  }, 30_000);
});
