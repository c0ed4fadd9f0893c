import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseTarget } from '../../src/db/database.ts';
import { createTestDatabase, usingPostgres } from '../support/database.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import {
  ALL_TOKEN_PERMISSIONS,
  applicationKey,
  commit,
  createToken,
  createTransaction,
  deleteToken,
  expireNow,
  readToken,
  rollback,
  updateToken,
} from '../tokens/support.ts';

/**
 * Races and restarts. On Postgres (TEST_DATABASE_URL) the requests of a race run on separate pooled connections, so
 * the row locks decide; on PGlite they serialize, and the outcome rules are the same.
 */

const env = { SWEEP_INTERVAL_MS: '100' };
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ env });
});
afterAll(() => gateway?.close());

const ROUNDS = 5;

describe('racing', () => {
  it('a commit and a rollback of one transaction: exactly one wins, the other gets CONFLICT', async () => {
    const { privateKey } = await gateway.createTenant();
    for (let round = 0; round < ROUNDS; round++) {
      const tx = await createTransaction(gateway, privateKey);
      const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: `r${round}` }, tx.id);
      const [committed, rolledBack] = await Promise.all([
        commit(gateway, privateKey, tx.id),
        rollback(gateway, privateKey, tx.id),
      ]);
      const winners = [committed, rolledBack].filter((result) => result.__typename === 'Transaction');
      expect(winners).toHaveLength(1);
      const loser = winners[0] === committed ? rolledBack : committed;
      expect(loser).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });
      expect(loser.message).toContain(winners[0].status);
      const visible = await readToken(gateway, privateKey, token.id);
      expect(visible?.data ?? null).toBe(winners[0] === committed ? `r${round}` : null);
    }
  });

  it('two commits of one transaction: exactly one wins', async () => {
    const { privateKey } = await gateway.createTenant();
    for (let round = 0; round < ROUNDS; round++) {
      const tx = await createTransaction(gateway, privateKey);
      const results = await Promise.all([commit(gateway, privateKey, tx.id), commit(gateway, privateKey, tx.id)]);
      expect(results.map((result) => result.__typename).sort()).toEqual(['ConflictError', 'Transaction']);
    }
  });

  it('two transactions enlisting one token for deletion: one holds it, the other gets CONFLICT', async () => {
    const { privateKey } = await gateway.createTenant();
    for (let round = 0; round < ROUNDS; round++) {
      const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'contested' });
      const [first, second] = [
        await createTransaction(gateway, privateKey),
        await createTransaction(gateway, privateKey),
      ];
      const results = await Promise.all([
        deleteToken(gateway, privateKey, token.id, first.id),
        deleteToken(gateway, privateKey, token.id, second.id),
      ]);
      expect(results.map((result) => result.__typename).sort()).toEqual(['ConflictError', 'Token']);
      const holder = results[0].__typename === 'Token' ? first : second;
      await commit(gateway, privateKey, holder.id);
      expect(await readToken(gateway, privateKey, token.id)).toBeNull();
    }
  });

  it('a token write and the commit of its transaction: the write lands before the commit or is refused', async () => {
    const { privateKey } = await gateway.createTenant();
    for (let round = 0; round < ROUNDS; round++) {
      const tx = await createTransaction(gateway, privateKey);
      const [created, committed] = await Promise.all([
        createToken(gateway, privateKey, { type: 'TOKEN', data: `w${round}` }, tx.id),
        commit(gateway, privateKey, tx.id),
      ]);
      expect(committed.status).toBe('COMMITTED');
      if (created.__typename === 'Token') {
        // Never orphaned in a finished transaction: it is visible to everyone.
        expect((await readToken(gateway, privateKey, created.id)).data).toBe(`w${round}`);
      } else {
        expect(created).toMatchObject({ __typename: 'ConflictError' });
        expect(created.message).toContain('COMMITTED');
      }
    }
  });

  it('two transactions updating one token: one holds it, the other gets CONFLICT; the commit lands the holder’s', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ALL_TOKEN_PERMISSIONS);
    for (let round = 0; round < ROUNDS; round++) {
      const token = await createToken(gateway, key, { type: 'TOKEN', data: 'contested' });
      const [first, second] = [await createTransaction(gateway, key), await createTransaction(gateway, key)];
      const results = await Promise.all([
        updateToken(gateway, key, token.id, { data: 'first' }, first.id),
        updateToken(gateway, key, token.id, { data: 'second' }, second.id),
      ]);
      expect(results.map((result) => result.__typename).sort()).toEqual(['ConflictError', 'Token']);
      const [holder, value] = results[0].__typename === 'Token' ? [first, 'first'] : [second, 'second'];
      await commit(gateway, key, holder.id);
      expect((await readToken(gateway, key, token.id)).data).toBe(value);
    }
  });

  it('an update and the commit of its transaction: the update lands before the commit or is refused', async () => {
    const tenant = await gateway.createTenant();
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ALL_TOKEN_PERMISSIONS);
    for (let round = 0; round < ROUNDS; round++) {
      const token = await createToken(gateway, key, { type: 'TOKEN', data: 'before' });
      const tx = await createTransaction(gateway, key);
      const [updated, committed] = await Promise.all([
        updateToken(gateway, key, token.id, { data: `u${round}` }, tx.id),
        commit(gateway, key, tx.id),
      ]);
      expect(committed.status).toBe('COMMITTED');
      // Never left pending in a finished transaction: it landed with the commit, or it was refused.
      const expected = updated.__typename === 'Token' ? `u${round}` : 'before';
      if (updated.__typename !== 'Token') expect(updated.message).toContain('COMMITTED');
      expect((await readToken(gateway, key, token.id)).data).toBe(expected);
    }
  });
});

describe('restart', () => {
  let dataDir: string | undefined;
  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** A gateway on a database that outlives it: a PGlite data directory, or this file's Postgres database. */
  async function startInstance(first: boolean): Promise<TestGateway> {
    if (usingPostgres) return startTestGateway({ env, database: gateway.database });
    dataDir ??= await mkdtemp(join(tmpdir(), 'rg-restart-'));
    const template = first ? (await createTestDatabase()).target : undefined;
    const target: DatabaseTarget = {
      kind: 'pglite',
      dataDir,
      ...(template?.kind === 'pglite' ? { template: template.template } : {}),
    };
    return startTestGateway({ env, target });
  }

  it('keeps an open transaction and its pending token across a restart, and commits it afterwards', async () => {
    const before = await startInstance(true);
    let privateKey: string;
    let txId: string;
    let tokenId: string;
    try {
      privateKey = (await before.createTenant()).privateKey;
      txId = (await createTransaction(before, privateKey)).id;
      tokenId = (await createToken(before, privateKey, { type: 'TOKEN', data: 'survives' }, txId)).id;
    } finally {
      await before.close();
    }
    const after = await startInstance(false);
    try {
      expect(await readToken(after, privateKey, tokenId)).toBeNull();
      expect((await readToken(after, privateKey, tokenId, txId)).data).toBe('survives');
      expect((await commit(after, privateKey, txId)).status).toBe('COMMITTED');
      expect((await readToken(after, privateKey, tokenId)).data).toBe('survives');
    } finally {
      await after.close();
    }
  });
});

describe('the periodic sweeper', () => {
  it('rolls back an expired transaction without being called', async () => {
    const { privateKey } = await gateway.createTenant();
    const tx = await createTransaction(gateway, privateKey);
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x' }, tx.id);
    await expireNow(gateway, 'transactions', tx.id);
    const stored = () =>
      gateway.app.database.db
        .selectFrom('transactions')
        .select('status')
        .where('id', '=', tx.id)
        .executeTakeFirstOrThrow();
    await until(
      'the sweeper to expire it',
      async () => ((await stored()).status === 'EXPIRED' ? true : undefined),
      5_000,
    );
    const rows = await gateway.app.database.db.selectFrom('tokens').select('id').where('id', '=', token.id).execute();
    expect(rows).toHaveLength(0);
  });
});
