import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import {
  type DatabaseTarget,
  GATEWAY_APPLICATION_NAME,
  GATEWAY_PRESENCE_LOCK,
  openDatabase,
} from '../../src/db/database.ts';
import { startServer } from '../../src/server.ts';
import { keyCheckValue } from '../../src/tokens/key-check.ts';
import { rotateMasterKey, runKeyRotation } from '../../src/tokens/key-rotation.ts';
import { createLastingDatabase, createTestDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, TEST_ENCRYPTION_KEY, type TestGateway, testEnvironment } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import {
  allowTokenUpdates,
  CREATE_TOKEN,
  card,
  commit,
  createToken,
  createTransaction,
  LIST_TOKENS,
  READ_TOKEN,
  readToken,
  updateToken,
} from './support.ts';

// Rotating the master key: everything sealed under the old key is sealed again under the new one, in one transaction.
const NEW_KEY = '7c'.repeat(32);
const [OLD, NEW] = [Buffer.from(TEST_ENCRYPTION_KEY, 'hex'), Buffer.from(NEW_KEY, 'hex')];
const REFUSED = /encryption key is not the one this database's tokens are encrypted with/;
const RESULT_LOGS = `query($reactorId: UUID!, $requestId: UUID!) { reactorResult(reactorId: $reactorId, requestId: $requestId) {
  status raw error { message } logs { level message } } }`;

const cleanups: (() => Promise<void>)[] = [];
const open = new Set<TestGateway>();
afterEach(async () => {
  for (const gateway of open) await gateway.close();
  open.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(gateway: Promise<TestGateway>): Promise<TestGateway> {
  const running = await gateway;
  open.add(running);
  return running;
}

async function stop(gateway: TestGateway): Promise<void> {
  open.delete(gateway);
  await gateway.close();
}

/** A session of the test's own on the gateways' Postgres database, ended after the test. */
async function directClient(url: string): Promise<pg.Client> {
  const direct = new pg.Client({ connectionString: url });
  await direct.connect();
  cleanups.push(() => direct.end());
  return direct;
}

/** Ends the gateway's listening session, the one holding the presence lock (it reconnects 250 ms later). */
async function cutListener(direct: pg.Client): Promise<void> {
  const { rows: holders } = await direct.query<{ pid: number }>(
    `select pid from pg_locks where locktype = 'advisory' and mode = 'ShareLock' and granted
       and database = (select oid from pg_database where datname = current_database())`,
  );
  expect(holders).toHaveLength(1);
  await direct.query('select pg_terminate_backend($1)', [holders[0]!.pid]);
}

/** A database that outlives its gateways, and how to start one on it or rotate its key between them. */
async function lastingDatabase() {
  const db = await createLastingDatabase();
  cleanups.push(() => db.drop());
  return {
    start: (
      key: string,
      env: Record<string, string> = {},
      session: { applicationName?: string } = {},
      onFatal?: (error: Error) => void,
    ) =>
      started(
        startTestGateway({
          database: db,
          target: { ...db.nextTarget(), ...session },
          env: { ENCRYPTION_KEY: key, ...env },
          onFatal,
        }),
      ),
    /** Postgres only: where the gateways connect. */
    target(): Extract<DatabaseTarget, { kind: 'postgres' }> {
      const target = db.nextTarget();
      if (target.kind !== 'postgres') throw new Error('A Postgres database only.');
      return target;
    },
    async rotate(from: Buffer, to: Buffer, batchSize?: number) {
      const target = db.nextTarget();
      const handle = await openDatabase(
        target.kind === 'postgres' ? { ...target, applicationName: 'rotation test' } : target,
      );
      try {
        return await rotateMasterKey(handle, from, to, { batchSize });
      } finally {
        await handle.close();
      }
    },
  };
}

describe('rotating the encryption key', () => {
  it('seals tokens, pending updates and async requests again under the new key, and refuses the old one after', async () => {
    const lasting = await lastingDatabase();
    const before = await lasting.start(TEST_ENCRYPTION_KEY, { EXPOSE_FORMULA_LOGS: 'true' });
    const tenant = await before.createTenant();
    const visa = await createToken(before, tenant.privateKey, { type: 'CARD', data: card(), metadata: { m: 1 } });
    const secret = await createToken(before, tenant.privateKey, { type: 'TOKEN', data: { pin: '1234' } });
    await allowTokenUpdates(before, tenant);
    const tx = (await createTransaction(before, tenant.privateKey)).id;
    await updateToken(before, tenant.privateKey, secret.id, { data: { pin: '9999' } }, tx);
    const reactorId = await createReactorWithCode(
      before,
      tenant.managementKey,
      "module.exports = async (req) => { console.log('hello from the formula');" +
        ' if (req.args.fail) throw new Error(`declined: ${req.args.fail}`); return { raw: req.args }; };',
    );
    // Async requests keep their args and outcome sealed (args and raw here, an error message there), and logs.
    const finished = async (gateway: TestGateway, requestId: string) =>
      until('the async run done', async () => {
        const result = (await gateway.gql<any>(RESULT_LOGS, { reactorId, requestId }, tenant.privateKey)).data
          ?.reactorResult;
        return result?.status === 'COMPLETED' || result?.status === 'FAILED' ? result : undefined;
      });
    const queue = async (args: Record<string, unknown>) =>
      (await before.gql<any>(REACT_ASYNC, { id: reactorId, args }, tenant.privateKey)).data?.reactAsync
        .asyncReactorRequestId as string;
    const [completedId, failedId] = [await queue({ pan: '4111111111111111' }), await queue({ fail: 'C-42' })];
    const completed = {
      status: 'COMPLETED',
      raw: { pan: '4111111111111111' },
      error: null,
      logs: [{ level: 'log', message: 'hello from the formula' }],
    };
    const failed = { status: 'FAILED', raw: null, error: { message: 'declined: C-42' } };
    expect(await finished(before, completedId)).toEqual(completed);
    expect(await finished(before, failedId)).toMatchObject(failed);
    // A stored idempotent response (sealed too): its retry after the rotation gets it back.
    const idempotent = async (gateway: TestGateway) => {
      const server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
      try {
        const response = await fetch(server.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'bt-api-key': tenant.privateKey, 'idempotency-key': 'k1' },
          body: JSON.stringify({ query: 'mutation { createTransaction { id } }' }),
        });
        return { replayed: response.headers.get('idempotent-replayed'), body: await response.json() };
      } finally {
        await server.close();
      }
    };
    const firstAnswer = await idempotent(before);
    await stop(before);

    // Batches of one: the walk from batch to batch is exercised too.
    expect(await lasting.rotate(OLD, NEW, 1)).toEqual({
      tokens: 2,
      pendingUpdates: 1,
      asyncRequests: 2,
      idempotentResponses: 1,
    });
    await expect(lasting.start(TEST_ENCRYPTION_KEY)).rejects.toThrow(REFUSED);
    const after = await lasting.start(NEW_KEY, { EXPOSE_FORMULA_LOGS: 'true' });
    expect(await idempotent(after)).toEqual({ replayed: 'true', body: firstAnswer.body });
    const readVisa = await readToken(after, tenant.privateKey, visa.id);
    expect(readVisa).toMatchObject({ data: card(), mask: visa.mask, metadata: { m: 1 } });
    // Fingerprints are keyed by the master key: new ones, and the same card tokenized now matches the rotated one.
    expect(readVisa.fingerprint).not.toBe(visa.fingerprint);
    const again = await createToken(after, tenant.privateKey, { type: 'CARD', data: card() });
    expect(again.fingerprint).toBe(readVisa.fingerprint);
    const listed = await after.gql<any>(LIST_TOKENS, { fingerprint: again.fingerprint }, tenant.privateKey);
    expect(listed.data?.tokens.totalCount).toBe(2);
    // The pending update opens inside its transaction, and lands on commit.
    expect((await readToken(after, tenant.privateKey, secret.id, tx)).data).toEqual({ pin: '9999' });
    expect((await readToken(after, tenant.privateKey, secret.id)).data).toEqual({ pin: '1234' });
    await commit(after, tenant.privateKey, tx);
    expect((await readToken(after, tenant.privateKey, secret.id)).data).toEqual({ pin: '9999' });
    expect(await finished(after, completedId)).toEqual(completed);
    expect(await finished(after, failedId)).toMatchObject(failed);
  });

  it('refuses a current key that is not the database key, or the same key again, changing nothing', async () => {
    const lasting = await lastingDatabase();
    const gateway = await lasting.start(TEST_ENCRYPTION_KEY);
    const tenant = await gateway.createTenant();
    const token = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'kept' });
    await stop(gateway);

    await expect(lasting.rotate(Buffer.from('a5'.repeat(32), 'hex'), NEW)).rejects.toThrow(REFUSED);
    await expect(lasting.rotate(OLD, OLD)).rejects.toThrow(/is the current one/);
    const again = await lasting.start(TEST_ENCRYPTION_KEY);
    expect((await readToken(again, tenant.privateKey, token.id)).data).toBe('kept');
  });

  it.runIf(usingPostgres)('refuses to run while a gateway runs on the database', async () => {
    const lasting = await lastingDatabase();
    const gateway = await lasting.start(TEST_ENCRYPTION_KEY);
    const tenant = await gateway.createTenant();
    const token = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'kept' });
    await expect(lasting.rotate(OLD, NEW)).rejects.toThrow(/A gateway is still running on this database/);
    expect((await readToken(gateway, tenant.privateKey, token.id)).data).toBe('kept');
  });

  it.runIf(usingPostgres)('waits for a just-stopped gateway session to end instead of refusing', async () => {
    const lasting = await lastingDatabase();
    const gateway = await lasting.start(TEST_ENCRYPTION_KEY);
    const tenant = await gateway.createTenant();
    const token = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'kept' });
    await stop(gateway);
    // A session named like a gateway's and holding its presence lock (as the listener does), ending half a second
    // into the rotation: what a disconnect the server has not finished acting on looks like.
    const lingering = new pg.Client({
      connectionString: lasting.target().url,
      application_name: GATEWAY_APPLICATION_NAME,
    });
    await lingering.connect();
    await lingering.query('select pg_advisory_lock_shared($1)', [GATEWAY_PRESENCE_LOCK]);
    const ended = new Promise((resolve) => setTimeout(resolve, 500)).then(() => lingering.end());
    expect((await lasting.rotate(OLD, NEW)).tokens).toBe(1);
    await ended;
    const after = await lasting.start(NEW_KEY);
    expect((await readToken(after, tenant.privateKey, token.id)).data).toBe('kept');
  });

  it.runIf(usingPostgres)(
    'finds a running gateway whose sessions are named otherwise (its advisory lock)',
    async () => {
      const lasting = await lastingDatabase();
      // A DATABASE_URL with its own application_name hides the gateway from pg_stat_activity's names.
      const gateway = await lasting.start(TEST_ENCRYPTION_KEY, {}, { applicationName: 'billing-service' });
      const tenant = await gateway.createTenant();
      const token = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'kept' });
      await expect(lasting.rotate(OLD, NEW)).rejects.toThrow(/holds the gateways' advisory lock/);
      expect((await readToken(gateway, tenant.privateKey, token.id)).data).toBe('kept');
    },
  );

  it.runIf(usingPostgres)('holds a gateway starting during a rotation until the rotation ends', async () => {
    const lasting = await lastingDatabase();
    await stop(await lasting.start(TEST_ENCRYPTION_KEY));
    const handle = await openDatabase({ ...lasting.target(), applicationName: 'rotation test' });
    cleanups.push(() => handle.close());
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    // What the rotation's transaction takes first, held until released.
    const rotation = handle.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${GATEWAY_PRESENCE_LOCK})`.execute(trx);
      await released;
    });
    await until('the exclusive advisory lock', async () => {
      const { rows } = await sql<{ held: number }>`select count(*)::int as held from pg_locks
        where locktype = 'advisory' and mode = 'ExclusiveLock' and granted`.execute(handle.db);
      return rows[0]!.held === 1 ? true : undefined;
    });
    let startedAt = 0;
    const starting = lasting.start(TEST_ENCRYPTION_KEY).then((gateway) => {
      startedAt = Date.now();
      return gateway;
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(startedAt).toBe(0);
    const releasedAt = Date.now();
    release();
    await rotation;
    const gateway = await starting;
    expect(startedAt).toBeGreaterThanOrEqual(releasedAt);
    expect((await gateway.createTenant()).privateKey).toBeTruthy();
  });

  it.runIf(!usingPostgres)('replaces the embedded key file, so the next start needs no setting', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-key-file-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const env = testEnvironment({ DATA_DIR: dataDir, ENCRYPTION_KEY: '' });
    const config = loadConfig(env);
    const start = () =>
      started(startTestGateway({ target: config.database, env: { DATA_DIR: dataDir, ENCRYPTION_KEY: '' } }));
    const first = await start();
    const tenant = await first.createTenant();
    const token = await createToken(first, tenant.privateKey, { type: 'TOKEN', data: 'kept' });
    const oldFile = await readFile(path.join(dataDir, 'encryption.key'), 'utf8');
    await stop(first);

    const report = await runKeyRotation(config, NEW_KEY);
    expect(report).toContain('1 tokens');
    expect((await readFile(path.join(dataDir, 'encryption.key'), 'utf8')).trim()).toBe(NEW_KEY);
    expect(oldFile.trim()).not.toBe(NEW_KEY);
    const second = await start();
    expect((await readToken(second, tenant.privateKey, token.id)).data).toBe('kept');
  });

  it.runIf(usingPostgres)(
    'a gateway whose key was rotated while its listener reconnected stops sealing, and shuts down',
    async () => {
      const db = await lastingDatabase();
      const fatal: Error[] = [];
      const gateway = await db.start(TEST_ENCRYPTION_KEY, {}, {}, (error) => fatal.push(error));
      const tenant = await gateway.createTenant();
      const before = await createToken(gateway, tenant.privateKey, { type: 'CARD', data: card() });
      expect(before.id).toEqual(expect.any(String));
      const direct = await directClient(db.target().url);
      // The listening session holds the presence lock; cut it, and while it is away (its first retry is 250 ms
      // later) hold the lock the way a rotation does and change what a rotation changes last: the key check.
      await cutListener(direct);
      await until(
        'the presence lock, exclusively',
        async () => {
          const { rows } = await direct.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [
            GATEWAY_PRESENCE_LOCK,
          ]);
          return rows[0]?.ok ? true : undefined;
        },
        200,
      );
      await direct.query('update encryption_key_check set check_value = $1', [keyCheckValue(NEW)]);
      await direct.query('select pg_advisory_unlock($1)', [GATEWAY_PRESENCE_LOCK]);
      await until('the gateway to find its key rotated away', () => (fatal.length > 0 ? true : undefined));
      expect(fatal[0]?.message).toMatch(REFUSED);
      // Nothing more is sealed (or opened) under the old key.
      const after = await gateway.gql<any>(
        CREATE_TOKEN,
        { input: { type: 'CARD', data: card({ number: '5555555555554444' }) } },
        tenant.privateKey,
      );
      expect(after.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      const read = await gateway.gql<any>(READ_TOKEN, { id: before.id }, tenant.privateKey);
      expect(read.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      const { rows: tokens } = await direct.query<{ n: number }>('select count(*)::int as n from tokens');
      expect(tokens[0]?.n).toBe(1);
    },
  );

  it.runIf(usingPostgres)(
    'a key check that fails after a reconnection is tried again, and still finds a key rotated away',
    async () => {
      const db = await lastingDatabase();
      const fatal: Error[] = [];
      const gateway = await db.start(TEST_ENCRYPTION_KEY, {}, {}, (error) => fatal.push(error));
      const tenant = await gateway.createTenant();
      const direct = await directClient(db.target().url);
      // While the listener is away, the key check's table is replaced by a view whose every read fails, counting
      // the attempts in a sequence (nextval survives the failing statement's rollback).
      await cutListener(direct);
      await direct.query(`
        alter table encryption_key_check rename to encryption_key_check_kept;
        create sequence key_check_reads;
        create function failing_key_check() returns setof text language plpgsql as $$
          begin perform nextval('key_check_reads'); raise exception 'the key check is unreadable for a while'; end $$;
        create view encryption_key_check as select failing_key_check() as check_value;`);
      await until('the re-check to fail once', async () => {
        const { rows } = await direct.query<{ called: boolean }>('select is_called as called from key_check_reads');
        return rows[0]?.called ? true : undefined;
      });
      expect(fatal).toEqual([]);
      // Now the check can be read again, and says the key was rotated away.
      await direct.query(`
        drop view encryption_key_check;
        alter table encryption_key_check_kept rename to encryption_key_check;
        update encryption_key_check set check_value = '${keyCheckValue(NEW)}';`);
      await until('the retried check to find the key rotated away', () => (fatal.length > 0 ? true : undefined));
      expect(fatal[0]?.message).toMatch(REFUSED);
      const after = await gateway.gql<any>(CREATE_TOKEN, { input: { type: 'CARD', data: card() } }, tenant.privateKey);
      expect(after.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    },
  );

  it('creates nothing where there is no gateway data: an empty Postgres database, an empty DATA_DIR', async () => {
    if (usingPostgres) {
      const empty = await createTestDatabase();
      cleanups.push(() => empty.drop());
      const config = loadConfig(testEnvironment({ DATABASE_URL: empty.url! }));
      await expect(runKeyRotation(config, NEW_KEY)).rejects.toThrow(/holds no reactor-gateway data/);
      const handle = await openDatabase(empty.target);
      const { rows } = await sql<{
        table: string | null;
      }>`select to_regclass('kysely_migration')::text as table`.execute(handle.db);
      await handle.close();
      expect(rows[0]?.table).toBeNull();
      return;
    }
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-empty-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const config = loadConfig(testEnvironment({ DATA_DIR: dataDir, ENCRYPTION_KEY: '' }));
    await expect(runKeyRotation(config, NEW_KEY)).rejects.toThrow(/There is no embedded database in/);
    expect(await readdir(dataDir)).toEqual([]);
  });
});
