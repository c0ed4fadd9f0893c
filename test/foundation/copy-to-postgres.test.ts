import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { copyDatabase, runCopyToPostgres } from '../../src/db/copy-database.ts';
import { type DatabaseTarget, openDatabase } from '../../src/db/database.ts';
import { createLastingDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, testEnvironment } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import {
  allowTokenUpdates,
  card,
  commit,
  createToken,
  createTransaction,
  LIST_TOKENS,
  readToken,
  updateToken,
} from '../tokens/support.ts';

// Moving from the embedded database to Postgres (`npm run copy-to-postgres`): everything an embedded gateway kept is
// copied as it is, and a gateway on the copy serves it with the same key, API keys and ids. In the postgres project
// the command itself runs; in the pglite project the same copy goes into another embedded database.
const RESULT = `query($reactorId: UUID!, $requestId: UUID!) { reactorResult(reactorId: $reactorId, requestId: $requestId) {
  status raw logs { message } } }`;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(gateway: Promise<TestGateway>): Promise<TestGateway> {
  const running = await gateway;
  cleanups.push(() => running.close());
  return running;
}

/** Copies the embedded database in `dataDir` into `target` the way this project can (see the comment at the top). */
async function copy(dataDir: string, target: DatabaseTarget, targetUrl: string | null): Promise<string> {
  if (usingPostgres) {
    return runCopyToPostgres(
      loadConfig(testEnvironment({ DATA_DIR: dataDir, ENCRYPTION_KEY: '', DATABASE_URL: targetUrl! })),
    );
  }
  const [source, into] = [
    await openDatabase({ kind: 'pglite', dataDir: path.join(dataDir, 'pgdata') }),
    await openDatabase(target),
  ];
  try {
    // Batches of two: the walk from batch to batch is exercised too.
    const report = await copyDatabase(source, into, { batchSize: 2 });
    return report.map(({ table, rows }) => `${table}: ${rows}`).join(', ');
  } finally {
    await into.close();
    await source.close();
  }
}

describe('copying the embedded database to Postgres', () => {
  it('copies everything, and a gateway on the copy serves it with the same key, keys and ids', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-copy-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const embeddedEnv = { DATA_DIR: dataDir, ENCRYPTION_KEY: '', EXPOSE_FORMULA_LOGS: 'true' };
    const embedded = await startTestGateway({
      target: loadConfig(testEnvironment(embeddedEnv)).database,
      env: embeddedEnv,
    });
    const tenant = await embedded.createTenant();
    const visa = await createToken(embedded, tenant.privateKey, {
      type: 'CARD',
      data: card(),
      metadata: { moved: 'yes' },
    });
    const secret = await createToken(embedded, tenant.privateKey, { type: 'TOKEN', data: { pin: '1234' } });
    await allowTokenUpdates(embedded, tenant);
    const tx = (await createTransaction(embedded, tenant.privateKey)).id;
    const pending = await createToken(embedded, tenant.privateKey, { type: 'TOKEN', data: 'pending' }, tx);
    await updateToken(embedded, tenant.privateKey, secret.id, { data: { pin: '9999' } }, tx);
    const reactorId = await createReactorWithCode(
      embedded,
      tenant.managementKey,
      "module.exports = async (req) => { console.log('ran'); return { raw: { last4: req.args.card.number.slice(-4) } }; };",
    );
    const requestId = (
      await embedded.gql<any>(REACT_ASYNC, { id: reactorId, args: { card: `{{ ${visa.id} }}` } }, tenant.privateKey)
    ).data?.reactAsync.asyncReactorRequestId;
    const result = (gateway: TestGateway) =>
      until('the async run done', async () => {
        const read = (await gateway.gql<any>(RESULT, { reactorId, requestId }, tenant.privateKey)).data?.reactorResult;
        return read?.status && read.status !== 'PENDING' && read.status !== 'RUNNING' ? read : undefined;
      });
    const before = await result(embedded);
    await embedded.close();

    const target = await createLastingDatabase();
    cleanups.push(() => target.drop());
    const report = await copy(dataDir, target.nextTarget(), target.url);
    expect(report).toContain('tokens: 3');
    expect(report).toContain('token_updates: 1');

    const key = (await readFile(path.join(dataDir, 'encryption.key'), 'utf8')).trim();
    const moved = await started(
      startTestGateway({
        database: target,
        target: target.nextTarget(),
        env: { ENCRYPTION_KEY: key, EXPOSE_FORMULA_LOGS: 'true' },
      }),
    );
    // Same API keys, same ids, same sealed data under the same key.
    expect(await readToken(moved, tenant.privateKey, visa.id)).toMatchObject({
      data: card(),
      mask: visa.mask,
      fingerprint: visa.fingerprint,
      createdAt: visa.createdAt,
    });
    const listed = await moved.gql<any>(LIST_TOKENS, { metadata: { moved: 'yes' } }, tenant.privateKey);
    expect(listed.data?.tokens.edges.map((edge: any) => edge.node.id)).toEqual([visa.id]);
    // The open transaction carried over: its pending token and update, applied by its commit.
    expect((await readToken(moved, tenant.privateKey, pending.id, tx)).data).toBe('pending');
    expect((await readToken(moved, tenant.privateKey, secret.id)).data).toEqual({ pin: '1234' });
    await commit(moved, tenant.privateKey, tx);
    expect((await readToken(moved, tenant.privateKey, secret.id)).data).toEqual({ pin: '9999' });
    expect((await readToken(moved, tenant.privateKey, pending.id)).data).toBe('pending');
    // The async result and its sealed logs; the reactor runs, detokenizing a copied token.
    expect(await result(moved)).toEqual(before);
    const reacted = await moved.gql<any>(
      REACT,
      { id: reactorId, args: { card: `{{ ${visa.id} }}` } },
      tenant.privateKey,
    );
    expect(reacted.data?.react).toMatchObject({ raw: { last4: '4242' } });

    // Every table of the schema was copied (a table added later is found by the copy, not listed by hand).
    const { rows } = await sql<{ name: string }>`select tablename as name from pg_tables
      where schemaname = 'public' and tablename not like 'kysely_migration%'`.execute(moved.app.database.db);
    expect(rows.length).toBeGreaterThan(5);
    for (const { name } of rows) expect(report).toMatch(new RegExp(`\\b${name}: \\d+`));
    // While a gateway runs on the target, a second copy is refused (on Postgres by the gateway's advisory lock).
    await expect(copy(dataDir, target.nextTarget(), target.url)).rejects.toThrow(
      usingPostgres ? /A gateway is running on the target/ : /is in use by process/,
    );
  }, 120_000);

  it('refuses a target that already holds data, copying nothing', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-copy-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const embeddedEnv = { DATA_DIR: dataDir, ENCRYPTION_KEY: '' };
    const embedded = await startTestGateway({
      target: loadConfig(testEnvironment(embeddedEnv)).database,
      env: embeddedEnv,
    });
    const tenant = await embedded.createTenant();
    await createToken(embedded, tenant.privateKey, { type: 'TOKEN', data: 'one' });
    await embedded.close();

    const target = await createLastingDatabase();
    cleanups.push(() => target.drop());
    const other = await startTestGateway({ database: target, target: target.nextTarget() });
    const elsewhere = await other.createTenant();
    const kept = await createToken(other, elsewhere.privateKey, { type: 'TOKEN', data: 'kept' });
    await other.close();

    await expect(copy(dataDir, target.nextTarget(), target.url)).rejects.toThrow(
      /The target database already holds data/,
    );
    const again = await started(startTestGateway({ database: target, target: target.nextTarget() }));
    expect((await readToken(again, elsewhere.privateKey, kept.id)).data).toBe('kept');
    expect(await again.gql<any>('{ viewer { tenant { id } } }', {}, tenant.privateKey)).toMatchObject({
      errors: [{ extensions: { code: 'UNAUTHENTICATED' } }],
    });
  }, 120_000);

  it.runIf(usingPostgres)(
    'is refused without DATABASE_URL, an embedded database, or into another application’s database',
    async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-copy-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      await expect(runCopyToPostgres(loadConfig(testEnvironment({ DATA_DIR: dataDir })))).rejects.toThrow(
        /Set DATABASE_URL to the Postgres database to copy into/,
      );
      await expect(
        runCopyToPostgres(
          loadConfig(testEnvironment({ DATA_DIR: dataDir, DATABASE_URL: process.env.TEST_DATABASE_URL! })),
        ),
      ).rejects.toThrow(/There is no embedded database in/);
      // A DATABASE_URL naming another application's database: its tables are left alone, and none are added.
      const foreign = await createLastingDatabase();
      cleanups.push(() => foreign.drop());
      const handle = await openDatabase({
        ...(foreign.nextTarget() as DatabaseTarget & { kind: 'postgres' }),
        applicationName: 'test',
      });
      cleanups.push(() => handle.close());
      await sql`create table invoices (id int)`.execute(handle.db);
      const embedded = await startTestGateway({
        target: loadConfig(testEnvironment({ DATA_DIR: dataDir, ENCRYPTION_KEY: '' })).database,
        env: { DATA_DIR: dataDir, ENCRYPTION_KEY: '' },
      });
      await embedded.close();
      await expect(copy(dataDir, foreign.nextTarget(), foreign.url)).rejects.toThrow(/tables of something other/);
      const { rows } = await sql<{
        name: string;
      }>`select tablename as name from pg_tables where schemaname = 'public'`.execute(handle.db);
      expect(rows.map((row) => row.name)).toEqual(['invoices']);
    },
  );
});
