import { type KyselyPlugin, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.ts';
import { startServer } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { testSealing } from '../support/requests.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { until } from '../support/until.ts';

// Postgres going away and coming back (a restart, a failover, a network cut), as a gateway instance sees it: the
// connections go through a TCP proxy that the tests cut for longer than the first attempts to reconnect take. An
// embedded PGlite cannot go away, so these run in the postgres project.
describe.runIf(usingPostgres)('a Postgres outage', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let direct: pg.Client;
  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    direct = new pg.Client({ connectionString: database.url! });
    await direct.connect();
  });
  afterAll(async () => {
    await direct?.end();
    await proxy?.close();
    await database?.drop();
  });

  /** Cuts the proxy, runs `during`, restores it after 1.2 s, and waits until the notifier says it listens again. */
  async function outage(notifier: { onReconnect(listener: () => void): () => void }, during = async () => {}) {
    let reconnected = false;
    const stop = notifier.onReconnect(() => {
      reconnected = true;
    });
    await proxy.cut();
    try {
      await during();
      // Longer than the first two retries (250 and 500 ms), so that some attempts fail.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
    } finally {
      // Back even when `during` failed, so the next test starts with a database.
      await proxy.restore();
    }
    try {
      await until('the listener to reconnect', () => (reconnected ? true : undefined), 15_000);
    } finally {
      stop();
    }
  }

  it('a gateway started before Postgres accepts connections waits for it, and gives up after DATABASE_START_TIMEOUT_MS', async () => {
    const target = { kind: 'postgres', url: proxy.url(database.url!), poolSize: 2 } as const;
    // Postgres "comes up" after `ms`: refused until then.
    const downFor = async (ms: number): Promise<{ back: Promise<void> }> => {
      await proxy.cut();
      return { back: new Promise((resolve) => setTimeout(resolve, ms)).then(() => proxy.restore()) };
    };
    // Refused for longer than the first attempts (250, 500 ms).
    let outage = await downFor(1_200);
    const gateway = await startTestGateway({ database, target });
    await outage.back;
    try {
      expect((await gateway.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
    } finally {
      await gateway.close();
    }
    // With a shorter wait than the outage, the start fails with the connection error: it gives up before Postgres
    // is back (a start that waited longer would succeed once it is).
    outage = await downFor(3_000);
    try {
      await expect(
        startTestGateway({ database, target, env: { DATABASE_START_TIMEOUT_MS: '600' } }),
      ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    } finally {
      await outage.back;
    }
  });

  it('the listening connection comes back after failed attempts, with its channels and its lock, and says so', async () => {
    const handle = await openDatabase({ kind: 'postgres', url: proxy.url(database.url!), poolSize: 2 });
    // The sessions holding the gateways' presence lock (the key rotation's guard) in this database.
    const presenceHolders = async () =>
      (
        await direct.query<{ pid: number }>(
          `select pid from pg_locks where locktype = 'advisory' and mode = 'ShareLock' and granted
             and database = (select oid from pg_database where datname = current_database())`,
        )
      ).rows.map((row) => row.pid);
    try {
      const received: string[] = [];
      await handle.notifier.listen('reconnect_test', (payload) => received.push(payload));
      await handle.holdGatewayPresence();
      const [before] = await presenceHolders();
      expect(before).toBeDefined();
      await outage(handle.notifier);
      await until('a notification after the outage', async () => {
        await direct.query("select pg_notify('reconnect_test', 'after')");
        return received.includes('after') ? true : undefined;
      });
      await until('the presence lock held by the new session', async () => {
        const holders = await presenceHolders();
        return holders.length === 1 && holders[0] !== before ? true : undefined;
      });
    } finally {
      await handle.close();
    }
  });

  describe('in a gateway', () => {
    let gateway: TestGateway;
    let other: TestGateway;
    // When a test sets `claimHold`, the runner's next claim of a request waits for it after the claim committed.
    let claimHold: { held: boolean; until: Promise<void> } | null = null;
    const claims = new WeakSet<object>();
    const holdClaims: KyselyPlugin = {
      transformQuery: (args) => {
        const node = args.node as { kind: string; table?: { table?: { identifier?: { name?: string } } } };
        if (node.kind === 'UpdateQueryNode' && node.table?.table?.identifier?.name === 'reactor_requests') {
          claims.add(args.queryId);
        }
        return args.node;
      },
      transformResult: async (args) => {
        const claimed = (args.result.rows[0] as { status?: string } | undefined)?.status === 'RUNNING';
        if (claimHold && claims.has(args.queryId) && claimed) {
          const hold = claimHold;
          claimHold = null;
          hold.held = true;
          await hold.until;
        }
        return args.result;
      },
    };
    beforeAll(async () => {
      gateway = await startTestGateway({
        database,
        target: { kind: 'postgres', url: proxy.url(database.url!), poolSize: 5 },
        queryPlugin: holdClaims,
      });
      other = await startTestGateway({ database });
    });
    afterAll(async () => {
      await gateway?.close();
      await other?.close();
    });

    it('fails a query whose connection drops, answers SERVICE_UNAVAILABLE meanwhile, and serves once it is back', async () => {
      const tenant = await gateway.createTenant();
      const running = sql`select pg_sleep(2)`.execute(gateway.app.database.db);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const count = JSON.stringify({ query: '{ reactors { totalCount } }' });
      await outage(gateway.app.database.notifier, async () => {
        await expect(running).rejects.toThrow('Connection terminated unexpectedly');
        const response = await gateway.post(count, tenant.managementKey);
        expect(response.status).toBe(503);
        // Whichever step needs the database first fails (the key's lookup, or the field itself).
        const { errors } = await response.json();
        expect(errors).toHaveLength(1);
        expect(errors[0]).toMatchObject({
          message: 'The database is unavailable; try again shortly.',
          extensions: { code: 'SERVICE_UNAVAILABLE', status: 503 },
        });
      });
      const response = await gateway.post(count, tenant.managementKey);
      expect(await response.json()).toEqual({ data: { reactors: { totalCount: 0 } } });
    });

    it('answers /ready with 503 while the database is away, and /health with 200 throughout', async () => {
      const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
      const probe = async (path: string) => {
        const response = await fetch(new URL(path, server.url));
        return { status: response.status, body: await response.json() };
      };
      try {
        expect(await probe('/ready')).toEqual({ status: 200, body: { status: 'ready' } });
        await outage(gateway.app.database.notifier, async () => {
          expect(await probe('/ready')).toEqual({ status: 503, body: { status: 'database unreachable' } });
          expect(await probe('/health')).toEqual({ status: 200, body: { status: 'ok' } });
        });
        expect(await probe('/ready')).toEqual({ status: 200, body: { status: 'ready' } });
      } finally {
        await server.close();
      }
    });

    /**
     * An async request of a formula that waits `ms` and returns `raw`, run by this instance alone (the caller starts
     * `other`'s runner again), once it is RUNNING. Returns a read of its row, straight from the database.
     */
    /** A request's status and raw, straight from the database (raw opened as the gateway opens it). */
    async function storedStatus(requestId: string): Promise<{ status: string; raw: unknown } | undefined> {
      const stored = (await direct.query('select * from reactor_requests where id = $1', [requestId])).rows[0];
      if (!stored) return undefined;
      const { status, raw } = testSealing.open(stored);
      return { status, raw };
    }

    async function runningAsyncRequest(ms: number, raw: Record<string, unknown>) {
      const tenant = await gateway.createTenant();
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        `module.exports = async () => { await new Promise((r) => setTimeout(r, ${ms})); return { raw: ${JSON.stringify(raw)} }; };`,
      );
      await other.app.runner.stop();
      const receipt = await gateway.gql<any>(REACT_ASYNC, { id: reactorId }, tenant.privateKey);
      const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
      const row = () => storedStatus(requestId);
      await until('the run to start', async () => ((await row())?.status === 'RUNNING' ? true : undefined));
      return row;
    }

    it('keeps the outcome of an async run that ended while the database was away', async () => {
      try {
        const status = await runningAsyncRequest(1000, { kept: true });
        // Past the run's own reads (its key, its reactor), into the formula's second: the run ends during the
        // outage, and storing its outcome fails until the database is back. (Were the cut to come before those reads
        // on a slow machine, the request would be requeued and run again instead: the outcome below is the same.)
        await new Promise((resolve) => setTimeout(resolve, 250));
        await outage(gateway.app.database.notifier);
        const row = await until('the outcome', async () => {
          const current = await status();
          return current && ['COMPLETED', 'FAILED'].includes(current.status) ? current : undefined;
        });
        expect(row).toEqual({ status: 'COMPLETED', raw: { kept: true } });
      } finally {
        other.app.runner.start();
      }
    });

    it('tells a react whose formula ran but whose tokens could not be stored that it ran', async () => {
      const tenant = await gateway.createTenant();
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        `module.exports = async (req) => {
          await new Promise((r) => setTimeout(r, req.args.wait));
          return { raw: { ran: true }, tokenize: { card: { type: 'TOKEN', data: 'secret' } } };
        };`,
      );
      const react = (wait: number) => gateway.gql<any>(REACT, { id: reactorId, args: { wait } }, tenant.privateKey);
      // Once with the database, so that the key and the reactor come from the caches during the cut.
      expect((await react(0)).data?.react.tokens.card).toEqual(expect.any(String));
      const during = react(700);
      await new Promise((resolve) => setTimeout(resolve, 250));
      await outage(gateway.app.database.notifier, async () => {
        const answer = (await during).data?.react;
        expect(answer).toMatchObject({
          __typename: 'ServiceUnavailableError',
          code: 'SERVICE_UNAVAILABLE',
          errors: { tokenize: ['could not be stored: the database is unavailable'] },
        });
        expect(answer.message).toContain('The reactor ran');
      });
    });

    it('stops at once when an outcome cannot be stored meanwhile, rather than retrying for the lease’s grace', async () => {
      try {
        const row = await runningAsyncRequest(600, { lost: true });
        await new Promise((resolve) => setTimeout(resolve, 250));
        await outage(gateway.app.database.notifier, async () => {
          // The formula ends during the cut; storing its outcome fails and is being retried (the lease's grace here
          // is 30 s). The shutdown of the runner does not wait for that.
          await new Promise((resolve) => setTimeout(resolve, 800));
          const started = Date.now();
          await gateway.app.runner.stop();
          expect(Date.now() - started).toBeLessThan(2_000);
        });
        // Left RUNNING for a sweeper to fail once its lease passes, as if its runner had died.
        expect((await row())?.status).toBe('RUNNING');
      } finally {
        gateway.app.runner.start();
        other.app.runner.start();
      }
    });

    it('puts back in the queue a request claimed just before the database went away, not yet started', async () => {
      const tenant = await gateway.createTenant();
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        'module.exports = async (req) => ({ raw: { v: req.args.v } });',
      );
      // A token no `react` has read: the run has to load it, and the database is gone by then.
      const token = await gateway.gql<any>(
        'mutation { createToken(input: { type: TOKEN, data: "after the outage" }) { ... on Token { id } } }',
        {},
        tenant.privateKey,
      );
      await other.app.runner.stop();
      let release = () => {};
      const hold = { held: false, until: new Promise<void>((resolve) => (release = resolve)) };
      claimHold = hold;
      try {
        const args = { v: `{{ ${token.data?.createToken.id} }}` };
        const receipt = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args }, tenant.privateKey);
        const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
        await until('the claim', () => (hold.held ? true : undefined));
        await outage(gateway.app.database.notifier, async () => {
          release();
        });
        const row = await until('the outcome', async () => {
          const stored = await storedStatus(requestId);
          return stored && ['COMPLETED', 'FAILED'].includes(stored.status) ? stored : undefined;
        });
        expect(row).toEqual({ status: 'COMPLETED', raw: { v: 'after the outage' } });
      } finally {
        claimHold = null;
        release();
        other.app.runner.start();
      }
    });

    it('forgets cached tokens and reactors, whose changes it may have missed', async () => {
      const tenant = await gateway.createTenant();
      const code = 'module.exports = async (req) => ({ raw: { v: req.args.v ?? null } });';
      const [reactorId, doomedReactorId] = [
        await createReactorWithCode(gateway, tenant.managementKey, code),
        await createReactorWithCode(gateway, tenant.managementKey, code),
      ];
      const token = await gateway.gql<any>(
        'mutation { createToken(input: { type: TOKEN, data: "cached" }) { ... on Token { id } } }',
        {},
        tenant.privateKey,
      );
      const tokenId = token.data?.createToken.id;
      const react = async (id: string, args: unknown) =>
        (await gateway.gql<any>(REACT, { id, args }, tenant.privateKey)).data?.react;
      // Both now cached: the token and the reactors.
      expect((await react(reactorId, { v: `{{ ${tokenId} }}` })).raw).toEqual({ v: 'cached' });
      expect((await react(doomedReactorId, {})).raw).toEqual({ v: null });
      // While the gateway cannot hear it, the token and a reactor go, by SQL on another connection.
      await outage(gateway.app.database.notifier, async () => {
        await direct.query('delete from tokens where id = $1', [tokenId]);
        await direct.query('delete from reactors where id = $1', [doomedReactorId]);
      });
      expect(await react(reactorId, { v: `{{ ${tokenId} }}` })).toMatchObject({ code: 'BAD_REQUEST' });
      expect(await react(doomedReactorId, {})).toMatchObject({ code: 'NOT_FOUND' });
    });

    it('re-reads the async results its subscribers wait for, which another instance may have finished meanwhile', async () => {
      const tenant = await gateway.createTenant();
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        'module.exports = async () => ({ raw: { from: "the other instance" } });',
      );
      // Only the other instance runs jobs; this one holds the subscriber.
      await gateway.app.runner.stop();
      await other.app.runner.stop();
      try {
        const receipt = await gateway.gql<any>(REACT_ASYNC, { id: reactorId }, tenant.privateKey);
        const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
        const principal = (await gateway.app.services.auth.authenticate(tenant.privateKey))!;
        const updates = gateway.app.services.invocations.resultUpdates(principal, requestId);
        expect((await updates.next()).value?.status).toBe('PENDING');
        // Settled as a value either way, so that a rejection during the outage is not left unhandled.
        const next = updates.next().catch((error: unknown) => error);
        // The request's own PENDING signal may still be queued: let the subscriber read the row again for it first.
        await new Promise((resolve) => setTimeout(resolve, 200));
        await outage(gateway.app.database.notifier, async () => {
          other.app.runner.start();
          await until('the other instance to finish the request', async () => {
            const { rows } = await direct.query('select status from reactor_requests where id = $1', [requestId]);
            return rows[0]?.status === 'COMPLETED' ? true : undefined;
          });
        });
        const settled = await Promise.race([
          next,
          new Promise((resolve) => setTimeout(() => resolve('waiting'), 5_000)),
        ]);
        expect(settled).toMatchObject({
          done: false,
          value: { status: 'COMPLETED', raw: { from: 'the other instance' } },
        });
        await updates.return?.(undefined);
      } finally {
        gateway.app.runner.start();
        other.app.runner.start();
      }
    });
  });
});
