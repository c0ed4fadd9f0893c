import { afterEach, describe, expect, it } from 'vitest';
import { verifyMasterKey } from '../../src/tokens/key-check.ts';
import { createVault } from '../../src/tokens/vault.ts';
import { createLastingDatabase, type LastingDatabase } from '../support/database.ts';
import { startTestGateway, TEST_ENCRYPTION_KEY, type TestGateway } from '../support/gateway.ts';
import { createToken, readToken } from './support.ts';

// A gateway refuses to start with another encryption key than the one its database's tokens were sealed with.
const OTHER_KEY = 'a5'.repeat(32);
const REFUSED = /encryption key is not the one this database's tokens are encrypted with/;

const open: TestGateway[] = [];
const databases: LastingDatabase[] = [];
afterEach(async () => {
  for (const gateway of open.splice(0)) await gateway.close();
  for (const database of databases.splice(0)) await database.drop();
});

async function database(): Promise<LastingDatabase> {
  const created = await createLastingDatabase();
  databases.push(created);
  return created;
}

async function start(db: LastingDatabase, key: string): Promise<TestGateway> {
  const gateway = await startTestGateway({ database: db, target: db.nextTarget(), env: { ENCRYPTION_KEY: key } });
  open.push(gateway);
  return gateway;
}

async function stop(gateway: TestGateway): Promise<void> {
  open.splice(open.indexOf(gateway), 1);
  await gateway.close();
}

describe('the encryption key check', () => {
  it('refuses another key than the one the tokens were sealed with, and starts again with the first', async () => {
    const db = await database();
    const first = await start(db, TEST_ENCRYPTION_KEY);
    const tenant = await first.createTenant();
    const token = await createToken(first, tenant.privateKey, { type: 'TOKEN', data: 'kept' });
    await stop(first);

    await expect(start(db, OTHER_KEY)).rejects.toThrow(REFUSED);
    const again = await start(db, TEST_ENCRYPTION_KEY);
    expect((await readToken(again, tenant.privateKey, token.id)).data).toBe('kept');
  });

  it('checks a database from before the check by opening its tokens, then keeps the key that opened them', async () => {
    const db = await database();
    const first = await start(db, TEST_ENCRYPTION_KEY);
    const tenant = await first.createTenant();
    await createToken(first, tenant.privateKey, { type: 'TOKEN', data: 'old' });
    // As a database migrated from the last release holds it: tokens, no check value.
    await first.app.database.db.deleteFrom('encryption_key_check').execute();
    await stop(first);

    await expect(start(db, OTHER_KEY)).rejects.toThrow(REFUSED);
    const right = await start(db, TEST_ENCRYPTION_KEY);
    expect(await right.app.database.db.selectFrom('encryption_key_check').selectAll().execute()).toHaveLength(1);
    await stop(right);
    await expect(start(db, OTHER_KEY)).rejects.toThrow(REFUSED);
  });

  it('lets a database without tokens take the first key, and holds to it', async () => {
    const db = await database();
    await stop(await start(db, OTHER_KEY));
    await expect(start(db, TEST_ENCRYPTION_KEY)).rejects.toThrow(REFUSED);
    await start(db, OTHER_KEY);
  });

  it('lets only one of two keys checked at once on a new database through', async () => {
    const db = await database();
    const gateway = await start(db, TEST_ENCRYPTION_KEY);
    // A new database again: no tokens, no check value. Both checks read "none yet" before either stores its own.
    await gateway.app.database.db.deleteFrom('encryption_key_check').execute();
    const keys = [Buffer.from(TEST_ENCRYPTION_KEY, 'hex'), Buffer.from(OTHER_KEY, 'hex')];
    const results = await Promise.allSettled(
      keys.map((key) => verifyMasterKey(gateway.app.database.db, key, createVault(key))),
    );
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(String((results.find((result) => result.status === 'rejected') as PromiseRejectedResult).reason)).toMatch(
      REFUSED,
    );
  });
});
