import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { errorCode, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import {
  applicationKey,
  CARD_NUMBER,
  card,
  commit,
  createToken,
  createTransaction,
  data,
  deleteToken,
  expireNow,
  readToken,
  rollback,
  tenantWithTokenKey,
  UNKNOWN_ID,
  UPDATE_TOKEN,
  updateToken,
} from './support.ts';

// updateToken: an RFC 7386 merge-patch of a token, alone or inside a transaction.
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

async function update(key: string, id: string, input: Record<string, unknown>, tx?: string): Promise<any> {
  return updateToken(gateway, key, id, input, tx);
}

/** A reactor that returns what its `value` arg detokenized to. */
async function echoReactor(tenant: TestTenant): Promise<string> {
  return createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async (req) => ({ raw: req.args.value });',
  );
}

async function detokenized(key: string, reactorId: string, tokenId: string, tx?: string): Promise<unknown> {
  const result = await gateway.gql<any>(REACT, { id: reactorId, args: { value: `{{ ${tokenId} }}` }, tx }, key);
  return data(result, 'react').raw;
}

describe('updateToken', () => {
  it('merges data and metadata, replaces containers and expiry, and recomputes mask and fingerprint', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, {
      type: 'CARD',
      data: card(),
      metadata: { customer: 'c1', note: 'old' },
    });
    const year = new Date().getUTCFullYear() + 5;
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const updated = await update(key, created.id, {
      data: { expiration_year: year, number: '5555555555554444' },
      metadata: { note: null, tier: 'gold' },
      containers: ['/pci/low/'],
      expiresAt,
    });
    expect(updated).toMatchObject({
      __typename: 'Token',
      id: created.id,
      type: 'CARD',
      data: { ...card(), expiration_year: year, number: '5555555555554444' },
      metadata: { customer: 'c1', tier: 'gold' },
      containers: ['/pci/low/'],
      expiresAt,
      createdAt: created.createdAt,
      createdBy: created.createdBy,
    });
    expect(updated.mask).toMatchObject({ last4: '4444', expiration_year: year });
    // Who changed it and when; a token never changed has neither.
    expect([created.modifiedBy, created.modifiedAt]).toEqual([null, null]);
    const self = (await gateway.gql<any>('{ viewer { application { id } } }', {}, key)).data.viewer.application.id;
    expect(updated.modifiedBy).toBe(self);
    expect(Date.parse(updated.modifiedAt)).toBeGreaterThanOrEqual(Date.parse(created.createdAt));
    expect(updated.fingerprint).not.toBe(created.fingerprint);
    // What was stored is what came back.
    const { __typename, ...fields } = updated;
    expect(await readToken(gateway, key, created.id)).toEqual(fields);
    // The fingerprint is the one a new token with that data gets.
    const twin = await createToken(gateway, key, { type: 'CARD', data: updated.data });
    expect(twin.fingerprint).toBe(updated.fingerprint);
  });

  it('keeps what the patch leaves out, clears with null, and replaces non-object data whole', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const created = await createToken(gateway, key, {
      type: 'TOKEN',
      data: 'first',
      metadata: { a: 1 },
      containers: ['/general/low/'],
      expiresAt,
    });
    const renamed = await update(key, created.id, { data: { now: 'an object' } });
    expect(renamed).toMatchObject({
      data: { now: 'an object' },
      metadata: { a: 1 },
      containers: ['/general/low/'],
      expiresAt,
    });
    const cleared = await update(key, created.id, { metadata: null, containers: null, expiresAt: null });
    expect(cleared).toMatchObject({
      data: { now: 'an object' },
      metadata: {},
      containers: ['/general/high/'],
      expiresAt: null,
    });
  });

  it('refuses an invalid result naming the fields, and changes nothing', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'CARD', data: card(), metadata: { k: 'v' } });
    const cases: [Record<string, unknown>, string][] = [
      [{ data: { number: '4242' } }, 'data.number'],
      [{ data: { expiration_month: 13 } }, 'data.expiration_month'],
      [{ data: 'not a card' }, 'data'],
      [{ metadata: { nested: { no: 1 } } }, 'metadata.nested'],
      [{ containers: [] }, 'containers'],
      [{ containers: ['pci'] }, 'containers'],
      [{ expiresAt: new Date(Date.now() - 60_000).toISOString() }, 'expiresAt'],
    ];
    for (const [input, field] of cases) {
      const result = await update(key, created.id, input);
      expect(result, JSON.stringify(input)).toMatchObject({
        __typename: 'BadRequestError',
        code: 'BAD_REQUEST',
        httpStatus: 400,
      });
      expect(Object.keys(result.errors), JSON.stringify(input)).toContain(field);
    }
    const { __typename, ...before } = created;
    expect(await readToken(gateway, key, created.id)).toEqual(before);
  });

  it('is NOT_FOUND for unknown, expired and other tenants’ tokens, which it leaves alone', async () => {
    const mine = await tenantWithTokenKey(gateway);
    const theirs = await tenantWithTokenKey(gateway);
    const their = await createToken(gateway, theirs.key, { type: 'TOKEN', data: 'theirs' });
    const expired = await createToken(gateway, mine.key, { type: 'TOKEN', data: 'gone' });
    await expireNow(gateway, 'tokens', expired.id);
    const input = { data: 'taken' };
    const unknown = await update(mine.key, UNKNOWN_ID, input);
    expect(unknown).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND', httpStatus: 404 });
    expect(await update(mine.key, their.id, input)).toEqual(unknown);
    expect(await update(mine.key, expired.id, input)).toEqual(unknown);
    expect((await readToken(gateway, theirs.key, their.id)).data).toBe('theirs');
  });

  it('needs token:update (the default PRIVATE application does not hold it)', async () => {
    const { tenant, key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'x' });
    expect(
      errorCode(await gateway.gql(UPDATE_TOKEN, { id: created.id, input: { data: 'y' } }, tenant.privateKey)),
    ).toBe('FORBIDDEN');
    expect((await readToken(gateway, key, created.id)).data).toBe('x');
  });

  it('refuses an application whose token containers do not cover the token, or its new containers', async () => {
    const { tenant, key } = await tenantWithTokenKey(gateway);
    const reactorId = await echoReactor(tenant);
    const scoped = await applicationKey(
      gateway,
      tenant,
      'PRIVATE',
      ['token:update', 'token:use', 'reactor:invoke'],
      ['/general/'],
    );
    const pci = await createToken(gateway, key, { type: 'TOKEN', data: 'pci secret', containers: ['/pci/high/'] });
    const general = await createToken(gateway, key, { type: 'TOKEN', data: 'general', containers: ['/general/low/'] });

    const moved = await update(scoped, pci.id, { containers: ['/general/high/'] });
    expect(moved).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN', httpStatus: 403 });
    expect(moved.message).toContain('/pci/high/');
    expect((await readToken(gateway, key, pci.id)).containers).toEqual(['/pci/high/']);
    const used = await gateway.gql<any>(REACT, { id: reactorId, args: { value: `{{ ${pci.id} }}` } }, scoped);
    expect(used.data?.react.code).toBe('FORBIDDEN');

    // Within its containers it may.
    expect(await update(scoped, general.id, { data: 'changed' })).toMatchObject({
      __typename: 'Token',
      id: general.id,
    });
    expect(await detokenized(scoped, reactorId, general.id)).toBe('changed');
    expect(await update(scoped, general.id, { containers: ['/general/high/'] })).toMatchObject({ __typename: 'Token' });
    // Nor may it move a token it covers out of its containers, where applications scoped elsewhere would reach it.
    const out = await update(scoped, general.id, { containers: ['/pci/high/'] });
    expect(out).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    expect(out.message).toBe(
      `Moving token "${general.id}" requires one of its containers (/pci/high/) to lie in this application's ` +
        'token containers (/general/).',
    );
    expect((await readToken(gateway, key, general.id)).containers).toEqual(['/general/high/']);
  });

  it('reaches the next react at once (the token cache forgets the old version)', async () => {
    const { tenant, key } = await tenantWithTokenKey(gateway);
    const reactorId = await echoReactor(tenant);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'before' });
    expect(await detokenized(key, reactorId, created.id)).toBe('before');
    await update(key, created.id, { data: 'after' });
    expect(await detokenized(key, reactorId, created.id)).toBe('after');
  });
});

describe('updateToken in a transaction', () => {
  it('is seen inside the transaction at once, by everyone else from the commit on', async () => {
    const { tenant, key } = await tenantWithTokenKey(gateway);
    const reactorId = await echoReactor(tenant);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'committed', metadata: { v: 1 } });
    expect(await detokenized(key, reactorId, created.id)).toBe('committed');
    const tx = await createTransaction(gateway, key);

    const pending = await update(key, created.id, { data: 'pending', metadata: { v: 2 } }, tx.id);
    expect(pending).toMatchObject({ data: 'pending', metadata: { v: 2 }, modifiedAt: expect.any(String) });
    expect((await readToken(gateway, key, created.id, tx.id)).modifiedAt).toBe(pending.modifiedAt);
    expect((await readToken(gateway, key, created.id)).modifiedAt).toBeNull();
    expect(await readToken(gateway, key, created.id, tx.id)).toMatchObject({ data: 'pending', metadata: { v: 2 } });
    expect(await detokenized(key, reactorId, created.id, tx.id)).toBe('pending');
    expect(await readToken(gateway, key, created.id)).toMatchObject({ data: 'committed', metadata: { v: 1 } });
    expect(await detokenized(key, reactorId, created.id)).toBe('committed');

    // A second update in the same transaction builds on the first.
    expect(await update(key, created.id, { metadata: { w: 3 } }, tx.id)).toMatchObject({
      data: 'pending',
      metadata: { v: 2, w: 3 },
    });
    await commit(gateway, key, tx.id);
    const committed = await readToken(gateway, key, created.id);
    expect(committed).toMatchObject({ data: 'pending', metadata: { v: 2, w: 3 }, modifiedBy: pending.modifiedBy });
    expect(Date.parse(committed.modifiedAt)).toBeGreaterThanOrEqual(Date.parse(pending.modifiedAt));
    expect(await detokenized(key, reactorId, created.id)).toBe('pending');
  });

  it('is dropped on rollback and on expiry', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'kept' });
    const rolledBack = await createTransaction(gateway, key);
    await update(key, created.id, { data: 'discarded' }, rolledBack.id);
    await rollback(gateway, key, rolledBack.id);
    expect((await readToken(gateway, key, created.id)).data).toBe('kept');

    const expiring = await createTransaction(gateway, key);
    await update(key, created.id, { data: 'too late' }, expiring.id);
    await expireNow(gateway, 'transactions', expiring.id);
    // Expired, not yet swept: it holds nothing, and a plain update may go ahead.
    expect((await readToken(gateway, key, created.id, expiring.id)).data).toBe('kept');
    expect(await update(key, created.id, { data: 'changed' })).toMatchObject({ data: 'changed' });
    await gateway.app.services.transactions.sweepExpired();
    expect((await readToken(gateway, key, created.id)).data).toBe('changed');
  });

  it('holds the token: another transaction, a plain update and a plain delete get CONFLICT until it ends', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'held' });
    const holder = await createTransaction(gateway, key);
    const other = await createTransaction(gateway, key);
    await update(key, created.id, { data: 'mine' }, holder.id);

    const conflict = { __typename: 'ConflictError', code: 'CONFLICT', httpStatus: 409 };
    expect(await update(key, created.id, { data: 'theirs' }, other.id)).toMatchObject(conflict);
    expect(await update(key, created.id, { data: 'plain' })).toMatchObject(conflict);
    expect(await deleteToken(gateway, key, created.id)).toMatchObject(conflict);
    expect(await deleteToken(gateway, key, created.id, other.id)).toMatchObject(conflict);

    await commit(gateway, key, holder.id);
    expect(await update(key, created.id, { data: 'theirs' }, other.id)).toMatchObject({ data: 'theirs' });
    await commit(gateway, key, other.id);
    expect((await readToken(gateway, key, created.id)).data).toBe('theirs');
  });

  it('cannot change a token held for deletion by another open transaction, nor one it deletes itself', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'doomed' });
    const deleting = await createTransaction(gateway, key);
    await deleteToken(gateway, key, created.id, deleting.id);
    expect(await update(key, created.id, { data: 'x' })).toMatchObject({ code: 'CONFLICT' });
    expect(await update(key, created.id, { data: 'x' }, deleting.id)).toMatchObject({ code: 'NOT_FOUND' });
    await commit(gateway, key, deleting.id);
    expect(await readToken(gateway, key, created.id)).toBeNull();
  });

  it('deletes on commit a token it both updated and deleted', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'v1' });
    const tx = await createTransaction(gateway, key);
    await update(key, created.id, { data: 'v2' }, tx.id);
    expect(await deleteToken(gateway, key, created.id, tx.id)).toMatchObject({ id: created.id });
    expect((await readToken(gateway, key, created.id)).data).toBe('v1');
    await commit(gateway, key, tx.id);
    expect(await readToken(gateway, key, created.id)).toBeNull();
  });

  it('changes in place a token created in the same transaction, which stays pending until commit', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const tx = await createTransaction(gateway, key);
    const created = await createToken(gateway, key, { type: 'CARD', data: card() }, tx.id);
    const updated = await update(key, created.id, { data: { cvc: '999' } }, tx.id);
    expect(updated.data).toEqual({ ...card(), cvc: '999' });
    expect(updated.data.number).toBe(CARD_NUMBER);
    expect(await readToken(gateway, key, created.id)).toBeNull();
    expect(await update(key, created.id, { data: { cvc: '111' } })).toMatchObject({ code: 'NOT_FOUND' });
    await commit(gateway, key, tx.id);
    expect((await readToken(gateway, key, created.id)).data.cvc).toBe('999');
  });

  it('is refused in a finished transaction, leaving the token as it was', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const created = await createToken(gateway, key, { type: 'TOKEN', data: 'same' });
    const tx = await createTransaction(gateway, key);
    await commit(gateway, key, tx.id);
    expect(await update(key, created.id, { data: 'x' }, tx.id)).toMatchObject({ code: 'CONFLICT' });
    expect(await update(key, created.id, { data: 'x' }, UNKNOWN_ID)).toMatchObject({ code: 'NOT_FOUND' });
    expect((await readToken(gateway, key, created.id)).data).toBe('same');
  });
});
