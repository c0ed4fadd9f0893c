import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { usingPostgres } from '../support/database.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import {
  applicationKey,
  CREATE_TOKEN,
  CREATE_TRANSACTION,
  commit,
  createToken,
  createTransaction,
  DELETE_TOKEN,
  data,
  deleteToken,
  expireNow,
  READ_TOKEN,
  READ_TRANSACTION,
  readToken,
  rollback,
  UNKNOWN_ID,
} from '../tokens/support.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

async function key(): Promise<string> {
  return (await gateway.createTenant()).privateKey;
}

async function tokenRowExists(id: string): Promise<boolean> {
  const rows = await gateway.app.database.db.selectFrom('tokens').select('id').where('id', '=', id).execute();
  return rows.length === 1;
}

describe('createTransaction', () => {
  it('opens a transaction created by the calling application that expires one hour later', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    expect(tx.status).toBe('OPEN');
    expect(new Date(tx.expiresAt).getTime() - new Date(tx.createdAt).getTime()).toBe(60 * 60 * 1000);
    const viewer = await gateway.gql('{ viewer { application { id } } }', {}, privateKey);
    expect(tx.createdBy).toBe(viewer.data?.viewer.application.id);
    expect(data(await gateway.gql(READ_TRANSACTION, { id: tx.id }, privateKey), 'transaction')).toEqual(tx);
  });

  it('needs only a valid key: a public key may, no key may not', async () => {
    const tenant = await gateway.createTenant();
    const publicKey = await applicationKey(gateway, tenant, 'PUBLIC', ['token:create']);
    expect((await createTransaction(gateway, publicKey)).status).toBe('OPEN');
    expect(errorCode(await gateway.gql(CREATE_TRANSACTION))).toBe('UNAUTHENTICATED');
  });

  it("reads another tenant's transaction as null, like an unknown id", async () => {
    const [mine, theirs] = [await key(), await key()];
    const tx = await createTransaction(gateway, theirs);
    expect(data(await gateway.gql(READ_TRANSACTION, { id: tx.id }, mine), 'transaction')).toBeNull();
    expect(data(await gateway.gql(READ_TRANSACTION, { id: UNKNOWN_ID }, mine), 'transaction')).toBeNull();
  });
});

describe('tokens created in a transaction', () => {
  it('are invisible outside it until commit, visible inside it, and visible to all after commit', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'pending' }, tx.id);
    expect(token.__typename).toBe('Token');
    expect(await readToken(gateway, privateKey, token.id)).toBeNull();
    expect((await readToken(gateway, privateKey, token.id, tx.id)).data).toBe('pending');
    const committed = await commit(gateway, privateKey, tx.id);
    expect(committed).toMatchObject({ __typename: 'Transaction', id: tx.id, status: 'COMMITTED' });
    expect((await readToken(gateway, privateKey, token.id)).data).toBe('pending');
  });

  it('are removed by rollback', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'doomed' }, tx.id);
    expect(await rollback(gateway, privateKey, tx.id)).toMatchObject({ status: 'ROLLED_BACK' });
    expect(await readToken(gateway, privateKey, token.id, tx.id)).toBeNull();
    expect(await tokenRowExists(token.id)).toBe(false);
  });

  it('honour the BT-TRANSACTION-ID header when the argument is absent', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    const header = { 'bt-transaction-id': tx.id };
    const created = await gateway.gql(
      CREATE_TOKEN,
      { input: { type: 'TOKEN', data: 'via header' } },
      privateKey,
      header,
    );
    const token = data(created, 'createToken');
    expect(await readToken(gateway, privateKey, token.id)).toBeNull();
    const inside = await gateway.gql(READ_TOKEN, { id: token.id }, privateKey, header);
    expect(data(inside, 'token').data).toBe('via header');
    const removed = await gateway.gql(DELETE_TOKEN, { id: token.id }, privateKey, header);
    expect(data(removed, 'deleteToken').__typename).toBe('Token');
    await commit(gateway, privateKey, tx.id);
    expect(await tokenRowExists(token.id)).toBe(false);
  });

  it("are refused in another tenant's or an unknown transaction with NOT_FOUND", async () => {
    const [mine, theirs] = [await key(), await key()];
    const theirTx = await createTransaction(gateway, theirs);
    const input = { type: 'TOKEN', data: 'x' };
    const inTheirs = await createToken(gateway, mine, input, theirTx.id);
    const inUnknown = await createToken(gateway, mine, input, UNKNOWN_ID);
    expect(inTheirs).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
    expect(inTheirs).toEqual(inUnknown);
    const malformed = await gateway.gql(CREATE_TOKEN, { input }, mine, { 'bt-transaction-id': 'not-a-uuid' });
    expect(data(malformed, 'createToken')).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('are refused in a committed, rolled back or expired transaction with CONFLICT naming its status', async () => {
    const privateKey = await key();
    const [committed, rolledBack, expired] = [
      await createTransaction(gateway, privateKey),
      await createTransaction(gateway, privateKey),
      await createTransaction(gateway, privateKey),
    ];
    await commit(gateway, privateKey, committed.id);
    await rollback(gateway, privateKey, rolledBack.id);
    await expireNow(gateway, 'transactions', expired.id);
    for (const [tx, status] of [
      [committed, 'COMMITTED'],
      [rolledBack, 'ROLLED_BACK'],
      [expired, 'EXPIRED'],
    ] as const) {
      const result = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x' }, tx.id);
      expect(result).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT', httpStatus: 409 });
      expect(result.message).toContain(status);
    }
  });
});

describe('deletes in a transaction', () => {
  it('leave the token visible to others until commit, hide it inside at once, and happen on commit', async () => {
    const privateKey = await key();
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'old' });
    const tx = await createTransaction(gateway, privateKey);
    expect(await deleteToken(gateway, privateKey, token.id, tx.id)).toEqual({ __typename: 'Token', id: token.id });
    expect((await readToken(gateway, privateKey, token.id)).data).toBe('old');
    expect(await readToken(gateway, privateKey, token.id, tx.id)).toBeNull();
    await commit(gateway, privateKey, tx.id);
    expect(await readToken(gateway, privateKey, token.id)).toBeNull();
    expect(await tokenRowExists(token.id)).toBe(false);
  });

  it('are undone by rollback', async () => {
    const privateKey = await key();
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'kept' });
    const tx = await createTransaction(gateway, privateKey);
    await deleteToken(gateway, privateKey, token.id, tx.id);
    await rollback(gateway, privateKey, tx.id);
    expect((await readToken(gateway, privateKey, token.id)).data).toBe('kept');
    // Released: it can be deleted again.
    expect((await deleteToken(gateway, privateKey, token.id)).__typename).toBe('Token');
  });

  it('hold the token: another transaction or a plain delete gets CONFLICT', async () => {
    const privateKey = await key();
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'held' });
    const [first, second] = [
      await createTransaction(gateway, privateKey),
      await createTransaction(gateway, privateKey),
    ];
    await deleteToken(gateway, privateKey, token.id, first.id);
    expect(await deleteToken(gateway, privateKey, token.id, second.id)).toMatchObject({ __typename: 'ConflictError' });
    expect(await deleteToken(gateway, privateKey, token.id)).toMatchObject({ __typename: 'ConflictError' });
    expect((await readToken(gateway, privateKey, token.id)).data).toBe('held');
  });

  it('of a token created in the same transaction remove it at once', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'brief' }, tx.id);
    expect((await deleteToken(gateway, privateKey, token.id, tx.id)).__typename).toBe('Token');
    expect(await tokenRowExists(token.id)).toBe(false);
    expect((await commit(gateway, privateKey, tx.id)).status).toBe('COMMITTED');
  });

  it('cannot reach a token created in another open transaction (NOT_FOUND)', async () => {
    const privateKey = await key();
    const [first, second] = [
      await createTransaction(gateway, privateKey),
      await createTransaction(gateway, privateKey),
    ];
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x' }, first.id);
    expect(await deleteToken(gateway, privateKey, token.id, second.id)).toMatchObject({ code: 'NOT_FOUND' });
    expect(await deleteToken(gateway, privateKey, token.id)).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('commitTransaction and rollbackTransaction', () => {
  it("answer NOT_FOUND for an unknown or another tenant's transaction", async () => {
    const [mine, theirs] = [await key(), await key()];
    const theirTx = await createTransaction(gateway, theirs);
    for (const finish of [commit, rollback]) {
      const other = await finish(gateway, mine, theirTx.id);
      expect(other).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND', httpStatus: 404 });
      expect(other).toEqual(await finish(gateway, mine, UNKNOWN_ID));
    }
    expect((await commit(gateway, theirs, theirTx.id)).status).toBe('COMMITTED');
  });

  it('answer FORBIDDEN to any application but its creator, which the others may still write in', async () => {
    const tenant = await gateway.createTenant();
    const browser = await applicationKey(gateway, tenant, 'PUBLIC', ['token:create']);
    const token = (await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'kept until commit' })).id;
    const tx = await createTransaction(gateway, tenant.privateKey);
    await deleteToken(gateway, tenant.privateKey, token, tx.id);
    // The browser creates a token in it, as BT-TRANSACTION-ID is for, but may not decide its outcome.
    const created = data(
      await gateway.gql(CREATE_TOKEN, { input: { type: 'TOKEN', data: 'from the browser' }, tx: tx.id }, browser),
      'createToken',
    );
    for (const [finish, verb] of [
      [commit, 'commit'],
      [rollback, 'roll back'],
    ] as const) {
      expect(await finish(gateway, browser, tx.id)).toMatchObject({
        __typename: 'ForbiddenError',
        code: 'FORBIDDEN',
        httpStatus: 403,
        message: `Only the application that created a transaction may ${verb} it.`,
      });
    }
    expect(data(await gateway.gql(READ_TRANSACTION, { id: tx.id }, tenant.privateKey), 'transaction').status).toBe(
      'OPEN',
    );
    expect(await readToken(gateway, tenant.privateKey, token)).not.toBeNull();
    expect((await commit(gateway, tenant.privateKey, tx.id)).status).toBe('COMMITTED');
    expect(await readToken(gateway, tenant.privateKey, token)).toBeNull();
    expect((await readToken(gateway, tenant.privateKey, created.id)).data).toBe('from the browser');
  });

  it('answer CONFLICT naming the status for a finished transaction', async () => {
    const privateKey = await key();
    const committed = await createTransaction(gateway, privateKey);
    await commit(gateway, privateKey, committed.id);
    const again = await commit(gateway, privateKey, committed.id);
    expect(again).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT', httpStatus: 409 });
    expect(again.message).toContain('COMMITTED');
    expect((await rollback(gateway, privateKey, committed.id)).message).toContain('COMMITTED');

    const rolledBack = await createTransaction(gateway, privateKey);
    await rollback(gateway, privateKey, rolledBack.id);
    expect((await commit(gateway, privateKey, rolledBack.id)).message).toContain('ROLLED_BACK');
    expect((await rollback(gateway, privateKey, rolledBack.id)).code).toBe('CONFLICT');
  });

  it('answer CONFLICT EXPIRED for an expired transaction, which then reads as EXPIRED', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    await expireNow(gateway, 'transactions', tx.id);
    for (const finish of [commit, rollback]) {
      const result = await finish(gateway, privateKey, tx.id);
      expect(result).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });
      expect(result.message).toContain('EXPIRED');
    }
    expect(data(await gateway.gql(READ_TRANSACTION, { id: tx.id }, privateKey), 'transaction').status).toBe('EXPIRED');
  });
});

describe('sweepExpired', () => {
  // PGlite runs in this process and reads its clock: only Postgres can disagree with the gateway about the time.
  it.runIf(usingPostgres)("judges expiry by the database's clock, whatever the gateway's says", async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    const pending = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x' }, tx.id);
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    const expiring = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'y', expiresAt });
    // This gateway's clock two hours ahead: past both expiries by its reckoning, not by the database's.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 2 * 3_600_000 });
    try {
      await gateway.app.services.transactions.sweepExpired();
    } finally {
      vi.useRealTimers();
    }
    expect(await tokenRowExists(expiring.id)).toBe(true);
    expect((await readToken(gateway, privateKey, pending.id, tx.id)).data).toBe('x');
    expect((await commit(gateway, privateKey, tx.id)).status).toBe('COMMITTED');
  });

  it('rolls back an expired transaction: its tokens go, its held deletes are released, it stays EXPIRED', async () => {
    const privateKey = await key();
    const kept = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'kept' });
    const tx = await createTransaction(gateway, privateKey);
    const created = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'pending' }, tx.id);
    await deleteToken(gateway, privateKey, kept.id, tx.id);
    await expireNow(gateway, 'transactions', tx.id);

    const result = await gateway.app.services.transactions.sweepExpired();
    expect(result.expiredTransactions).toBeGreaterThanOrEqual(1);
    expect(await tokenRowExists(created.id)).toBe(false);
    expect((await deleteToken(gateway, privateKey, kept.id)).__typename).toBe('Token');
    expect(data(await gateway.gql(READ_TRANSACTION, { id: tx.id }, privateKey), 'transaction').status).toBe('EXPIRED');
    expect((await commit(gateway, privateKey, tx.id)).message).toContain('EXPIRED');
  });

  it('is not needed for an expired transaction to stop hiding the tokens it held for deletion', async () => {
    // Found by test/transactions/model.test.ts: read in the expired transaction, the token stayed hidden until the
    // sweeper came by, while a plain delete could already take it.
    const privateKey = await key();
    const held = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'held' });
    const tx = await createTransaction(gateway, privateKey);
    await deleteToken(gateway, privateKey, held.id, tx.id);
    expect(await readToken(gateway, privateKey, held.id, tx.id)).toBeNull();
    await expireNow(gateway, 'transactions', tx.id);
    expect((await readToken(gateway, privateKey, held.id, tx.id))?.data).toBe('held');
    expect((await readToken(gateway, privateKey, held.id))?.data).toBe('held');
  });

  it('leaves open transactions that have not expired alone', async () => {
    const privateKey = await key();
    const tx = await createTransaction(gateway, privateKey);
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x' }, tx.id);
    await gateway.app.services.transactions.sweepExpired();
    expect((await readToken(gateway, privateKey, token.id, tx.id)).data).toBe('x');
    expect((await commit(gateway, privateKey, tx.id)).status).toBe('COMMITTED');
  });
});
