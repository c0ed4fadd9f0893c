import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { ADMIN_KEY, startTestGateway, TEST_ENCRYPTION_KEY, type TestGateway } from '../support/gateway.ts';
import { testSealing } from '../support/requests.ts';
import { until } from '../support/until.ts';
import { collect, wsClient } from '../support/ws.ts';

// Several gateway instances share one Postgres (PGlite is single-process, so these run in the postgres project).
describe.runIf(usingPostgres)('several gateway instances on one Postgres', () => {
  let database: TestDatabase;
  let a: TestGateway;
  let b: TestGateway;
  let serverA: RunningServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = { JOB_CONCURRENCY: '4', EGRESS_ALLOW: '127.0.0.1/32' };
    a = await startTestGateway({ database, env });
    b = await startTestGateway({ database, env });
    serverA = await startServer(a.app, { port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await serverA?.close();
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  it('spreads jobs over both instances and runs each exactly once', async () => {
    const hits = await startHitCounter();
    const tenant = await a.createTenant();
    const reactorId = await createReactorWithCode(
      a,
      tenant.managementKey,
      // Every run reports itself to a counter outside the gateway: a second run of a request would be counted.
      `module.exports = async (req) => {
        await fetch('${hits.url}?n=' + req.args.n);
        await new Promise((r) => setTimeout(r, 100));
        return { raw: { n: req.args.n } };
      };`,
    );
    const ids: string[] = [];
    for (let n = 0; n < 24; n++) {
      const via = n % 2 === 0 ? a : b;
      const result = await via.gql<any>(REACT_ASYNC, { id: reactorId, args: { n } }, tenant.privateKey);
      ids.push(result.data?.reactAsync.asyncReactorRequestId);
    }
    const rows = await until('every request to complete', async () => {
      const found = await a.app.database.db.selectFrom('reactor_requests').selectAll().where('id', 'in', ids).execute();
      return found.length === ids.length && found.every((row) => row.status === 'COMPLETED')
        ? found.map(testSealing.open)
        : undefined;
    });
    const runners = new Set(rows.map((row) => row.runner_id));
    expect(runners.size).toBe(2);
    expect(rows.map((row) => (row.raw as { n: number }).n).sort((x, y) => x - y)).toEqual([...Array(24).keys()]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect([...hits.counts.keys()].sort((x, y) => x - y)).toEqual([...Array(24).keys()]);
    expect([...hits.counts.values()].every((count) => count === 1)).toBe(true);
    hits.server.close();
  });

  it('delivers to a subscriber on instance A the result computed on instance B', async () => {
    const tenant = await a.createTenant();
    const reactorId = await createReactorWithCode(
      a,
      tenant.managementKey,
      'module.exports = async () => ({ raw: { from: "runner" } });',
    );
    // Only B runs jobs for this test.
    await a.app.runner.stop();
    try {
      const receipt = await b.gql<any>(REACT_ASYNC, { id: reactorId }, tenant.privateKey);
      const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
      const client = wsClient(serverA.url, tenant.privateKey);
      try {
        const { values, completed } = await collect(
          client,
          'subscription($requestId: UUID!) { reactorResult(requestId: $requestId) { status raw } }',
          { requestId },
        );
        expect(completed).toBe(true);
        expect(values.at(-1)?.reactorResult).toEqual({ status: 'COMPLETED', raw: { from: 'runner' } });
      } finally {
        await client.dispose();
      }
      const row = await a.app.database.db
        .selectFrom('reactor_requests')
        .select('runner_id')
        .where('id', '=', requestId)
        .executeTakeFirstOrThrow();
      expect(row.runner_id).toBe(b.app.runner.runnerId);
    } finally {
      a.app.runner.start();
    }
  });

  it("streams reactor events of both instances to a subscriber on A, each once (A's own NOTIFY echo is ignored)", async () => {
    const tenant = await a.createTenant();
    const reactorId = await createReactorWithCode(
      a,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const client = wsClient(serverA.url, tenant.managementKey);
    try {
      const events = collect(
        client,
        'subscription($id: UUID) { reactorEvents(reactorId: $id) { type request { id } } }',
        { id: reactorId },
        // Two reacts make four events; wait a little past them so a duplicate would be seen.
        { until: (values) => values.length > 4, timeoutMs: 1_500 },
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      await b.gql(REACT, { id: reactorId }, tenant.privateKey);
      await a.gql(REACT, { id: reactorId }, tenant.privateKey);
      const { values } = await events;
      const types = values.map((v) => v.reactorEvents.type);
      expect(types.filter((type) => type === 'reactor.invoked')).toHaveLength(2);
      expect(types.filter((type) => type === 'reactor.completed')).toHaveLength(2);
      expect(values).toHaveLength(4);
      expect(new Set(values.map((v) => v.reactorEvents.request.id)).size).toBe(2);
    } finally {
      await client.dispose();
    }
  });

  it('fails a request whose runner was killed mid-job as REACTOR_INTERRUPTED, and never runs it twice', async () => {
    const tenant = await a.createTenant();
    const reactorId = await createReactorWithCode(
      a,
      tenant.managementKey,
      'module.exports = async () => { await new Promise((r) => setTimeout(r, 8000)); return { raw: "finished" }; };',
    );
    // This test's own instances must not claim the job: only the child process does.
    await a.app.runner.stop();
    await b.app.runner.stop();
    let child: ChildProcess | undefined;
    try {
      child = spawnGateway(database.url!);
      await waitForHealth(child);
      const receipt = await a.gql<any>(REACT_ASYNC, { id: reactorId, timeoutMs: 10_000 }, tenant.privateKey);
      const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
      await until(
        'the run to start',
        async () => ((await status(a, reactorId, requestId, tenant.privateKey)) === 'RUNNING' ? true : undefined),
        15_000,
      );
      child.kill('SIGKILL');
      await new Promise((resolve) => child!.once('exit', resolve));

      // Restart: our instances sweep; the lease (timeout 10 s + 1 s grace) must pass first.
      a.app.runner.start();
      await until(
        'the sweeper to fail it',
        async () => {
          await a.app.runner.sweep();
          return (await status(a, reactorId, requestId, tenant.privateKey)) === 'FAILED' ? true : undefined;
        },
        20_000,
      );
      const result = await a.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey);
      expect(result.data?.reactorResult.error.code).toBe('REACTOR_INTERRUPTED');
      expect(result.data?.reactorResult.raw).toBeNull();
      const stuck = await a.app.database.db
        .selectFrom('reactor_requests')
        .select('id')
        .where('status', 'in', ['PENDING', 'RUNNING'])
        .where('tenant_id', '=', tenant.tenantId)
        .execute();
      expect(stuck).toEqual([]);
    } finally {
      child?.kill('SIGKILL');
      b.app.runner.start();
    }
  }, 60_000);

  it('stops accepting a regenerated key on the other instance within the key cache time (5 s)', async () => {
    const tenant = await a.createTenant();
    const viewer = '{ viewer { application { id } } }';
    const self = (await b.gql<any>(viewer, {}, tenant.privateKey)).data?.viewer.application.id;
    const regenerated = await a.gql<any>(
      'mutation($id: UUID!) { regenerateApplicationKey(id: $id) { ... on RegenerateApplicationKeyPayload { key } } }',
      { id: self },
      tenant.managementKey,
    );
    const newKey = regenerated.data?.regenerateApplicationKey.key;
    const started = Date.now();
    // B cached the old key a moment ago: it answers until that entry expires, then refuses it.
    await until(
      'B to refuse the old key',
      async () => {
        const result = await b.gql(viewer, {}, tenant.privateKey);
        return result.errors?.[0]?.extensions?.code === 'UNAUTHENTICATED' ? true : undefined;
      },
      10_000,
    );
    expect(Date.now() - started).toBeLessThan(6_000);
    expect((await b.gql<any>(viewer, {}, newKey)).data?.viewer.application.id).toBe(self);
  });
});

async function startHitCounter() {
  const counts = new Map<number, number>();
  const server = http.createServer((req, res) => {
    const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n'));
    counts.set(n, (counts.get(n) ?? 0) + 1);
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, counts, url: `http://127.0.0.1:${port}/hit` };
}

function spawnGateway(databaseUrl: string): ChildProcess {
  return spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', path.resolve('src/main.ts'), 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
      ADMIN_API_KEY: ADMIN_KEY,
      JOB_LEASE_MS: '1000',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

function waitForHealth(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child gateway did not start')), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('reactor-gateway listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`child gateway exited with ${code}`)));
  });
}

async function status(gateway: TestGateway, reactorId: string, requestId: string, key: string): Promise<string> {
  const result = await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, key);
  return result.data?.reactorResult?.status;
}
