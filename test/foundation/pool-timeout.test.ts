import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

// Every pooled connection stuck (behind a lock someone holds, say): a request waits for one a bounded time and is
// answered SERVICE_UNAVAILABLE, and /ready says so within a probe's timeout, instead of both hanging.
describe.runIf(usingPostgres)('a gateway whose pool has no free connection', () => {
  let database: TestDatabase;
  let gateway: TestGateway;
  let server: RunningServer;
  let tenant: TestTenant;
  beforeAll(async () => {
    database = await createTestDatabase();
    gateway = await startTestGateway({
      database,
      target: { kind: 'postgres', url: database.url!, poolSize: 1, poolTimeoutMs: 500 },
    });
    server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
    tenant = await gateway.createTenant();
  });
  afterAll(async () => {
    await server?.close();
    await gateway?.close();
    await database?.drop();
  });

  it('answers 503 after DB_POOL_TIMEOUT_MS, not when the connection is free again, and serves once it is', async () => {
    const count = JSON.stringify({ query: '{ reactors { totalCount } }' });
    expect((await gateway.post(count, tenant.managementKey)).status).toBe(200);
    // The only connection, busy for 3 s.
    const busy = sql`select pg_sleep(3)`.execute(gateway.app.database.db);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    const during = await gateway.post(count, tenant.managementKey);
    const waitedMs = performance.now() - started;
    expect(during.status).toBe(503);
    expect(((await during.json()) as any).errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
    expect(waitedMs).toBeLessThan(2_500);
    const ready = await fetch(server.url.replace('/graphql', '/ready'));
    expect(ready.status).toBe(503);
    await busy;
    expect((await gateway.post(count, tenant.managementKey)).status).toBe(200);
    expect((await fetch(server.url.replace('/graphql', '/ready'))).status).toBe(200);
  }, 20_000);
});
