import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import {
  applicationKey,
  CARD_NUMBER,
  card,
  createToken,
  deleteToken,
  expireNow,
  READ_TOKEN,
  readToken,
  UNKNOWN_ID,
} from './support.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

async function tenant(): Promise<TestTenant> {
  return gateway.createTenant();
}

describe('createToken', () => {
  it('stores a card token and returns its normalised data, mask, fingerprint and the /pci/high/ container', async () => {
    const { privateKey } = await tenant();
    const token = await createToken(gateway, privateKey, {
      type: 'CARD',
      data: card({ number: '4242 4242 4242 4242' }),
      metadata: { customer: 'c-1', attempt: 2 },
    });
    expect(token.__typename).toBe('Token');
    expect(token.type).toBe('CARD');
    expect(token.data).toEqual(card());
    expect(token.mask).toMatchObject({ number: '424242XXXXXX4242', last4: '4242', bin: '424242', brand: 'visa' });
    expect(token.containers).toEqual(['/pci/high/']);
    expect(token.metadata).toEqual({ customer: 'c-1', attempt: 2 });
    expect(token.fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(token.expiresAt).toBeNull();
    const viewer = await gateway.gql('{ viewer { application { id } } }', {}, privateKey);
    expect(token.createdBy).toBe(viewer.data?.viewer.application.id);
  });

  it('puts TOKEN data in /general/high/ and BANK data in /bank/high/ by default', async () => {
    const { privateKey } = await tenant();
    const generic = await createToken(gateway, privateKey, { type: 'TOKEN', data: { ssn: '123-45-6789' } });
    const bank = await createToken(gateway, privateKey, {
      type: 'BANK',
      data: { routing_number: '021000021', account_number: '1234567890' },
    });
    expect(generic.containers).toEqual(['/general/high/']);
    expect(generic.mask).toBeNull();
    expect(bank.containers).toEqual(['/bank/high/']);
    expect(bank.mask).toMatchObject({ last4: '7890' });
  });

  it('accepts explicit containers of the form /a/b/', async () => {
    const { privateKey } = await tenant();
    const token = await createToken(gateway, privateKey, {
      type: 'TOKEN',
      data: 'x',
      containers: ['/pci/low/', '/general/'],
    });
    expect(token.containers).toEqual(['/pci/low/', '/general/']);
  });

  it('rejects a malformed container path as BAD_REQUEST naming containers', async () => {
    const { privateKey } = await tenant();
    for (const containers of [['pci/high'], ['/PCI/high/'], ['/pci//'], []]) {
      const result = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x', containers });
      expect(result).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST', httpStatus: 400 });
      expect(Object.keys(result.errors)).toEqual(['containers']);
    }
  });

  it('rejects invalid card data as BAD_REQUEST naming each field', async () => {
    const { privateKey } = await tenant();
    const result = await createToken(gateway, privateKey, {
      type: 'CARD',
      data: card({ number: '4242424242424241', expiration_month: 13 }),
    });
    expect(result).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
    expect(Object.keys(result.errors).sort()).toEqual(['data.expiration_month', 'data.number']);
  });

  it('rejects empty generic data as BAD_REQUEST naming data', async () => {
    const { privateKey } = await tenant();
    const result = await createToken(gateway, privateKey, { type: 'TOKEN', data: '' });
    expect(result.errors).toHaveProperty('data');
  });

  it('rejects an expiresAt in the past as BAD_REQUEST naming expiresAt', async () => {
    const { privateKey } = await tenant();
    const result = await createToken(gateway, privateKey, {
      type: 'TOKEN',
      data: 'x',
      expiresAt: new Date(Date.now() - 60_000).toISOString(),
    });
    expect(result).toMatchObject({ __typename: 'BadRequestError', errors: { expiresAt: ['must be in the future'] } });
  });

  it('rejects nested metadata values as BAD_REQUEST naming the key', async () => {
    const { privateKey } = await tenant();
    const result = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'x', metadata: { deep: { a: 1 } } });
    expect(result.errors).toHaveProperty(['metadata.deep']);
  });

  it('keeps the data encrypted at rest: the raw row does not contain the card number', async () => {
    const { privateKey, tenantId } = await tenant();
    const token = await createToken(gateway, privateKey, { type: 'CARD', data: card(), metadata: { note: 'm' } });
    const row = await gateway.app.database.db
      .selectFrom('tokens')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', token.id)
      .executeTakeFirstOrThrow();
    const sealed = Buffer.from(row.data);
    expect(sealed.length).toBeGreaterThan(CARD_NUMBER.length);
    for (const text of [
      sealed.toString('utf8'),
      sealed.toString('latin1'),
      sealed.toString('hex'),
      sealed.toString('base64'),
    ]) {
      expect(text).not.toContain(CARD_NUMBER);
      expect(text).not.toContain('"cvc"');
    }
    const everythingElse = JSON.stringify({ ...row, data: undefined });
    expect(everythingElse).not.toContain(CARD_NUMBER);
    expect(everythingElse).not.toContain('"cvc"');
  });

  it('gives equal data equal fingerprints within a tenant and different ones across tenants', async () => {
    const [a, b] = [await tenant(), await tenant()];
    const first = await createToken(gateway, a.privateKey, { type: 'CARD', data: card() });
    const second = await createToken(gateway, a.privateKey, {
      type: 'CARD',
      data: card({ number: '4242-4242-4242-4242' }),
    });
    const other = await createToken(gateway, b.privateKey, { type: 'CARD', data: card() });
    expect(second.fingerprint).toBe(first.fingerprint);
    expect(other.fingerprint).not.toBe(first.fingerprint);
  });

  it('lets a public application create tokens but not see their data, read or delete them', async () => {
    const t = await tenant();
    const publicKey = await applicationKey(gateway, t, 'PUBLIC', ['token:create']);
    const token = await createToken(gateway, publicKey, { type: 'CARD', data: card() });
    expect(token.__typename).toBe('Token');
    expect(token.data).toBeNull();
    expect(token.mask.last4).toBe('4242');
    expect(errorCode(await gateway.gql(READ_TOKEN, { id: token.id }, publicKey))).toBe('FORBIDDEN');
    const removal = await gateway.gql(
      'mutation($id: UUID!) { deleteToken(id: $id) { __typename } }',
      { id: token.id },
      publicKey,
    );
    expect(errorCode(removal)).toBe('FORBIDDEN');
    expect((await readToken(gateway, t.privateKey, token.id)).data).toEqual(card());
  });

  it('answers UNAUTHENTICATED without a key and FORBIDDEN to a key without token:create', async () => {
    const t = await tenant();
    const input = { type: 'TOKEN', data: 'x' };
    const query = 'mutation($input: CreateTokenInput!) { createToken(input: $input) { __typename } }';
    expect(errorCode(await gateway.gql(query, { input }))).toBe('UNAUTHENTICATED');
    expect(errorCode(await gateway.gql(query, { input }, t.managementKey))).toBe('FORBIDDEN');
  });
});

describe('token', () => {
  it('reads a token back with its decrypted data', async () => {
    const { privateKey } = await tenant();
    const created = await createToken(gateway, privateKey, { type: 'TOKEN', data: { ssn: '123-45-6789' } });
    const read = await readToken(gateway, privateKey, created.id);
    expect(read).toEqual({ ...created, __typename: undefined, data: { ssn: '123-45-6789' } } as never);
  });

  it("treats another tenant's token exactly like an unknown id", async () => {
    const [mine, theirs] = [await tenant(), await tenant()];
    const theirToken = await createToken(gateway, theirs.privateKey, { type: 'TOKEN', data: 'secret' });
    expect(await gateway.gql(READ_TOKEN, { id: theirToken.id }, mine.privateKey)).toEqual(
      await gateway.gql(READ_TOKEN, { id: UNKNOWN_ID }, mine.privateKey),
    );
    const removeTheirs = await deleteToken(gateway, mine.privateKey, theirToken.id);
    const removeUnknown = await deleteToken(gateway, mine.privateKey, UNKNOWN_ID);
    expect(removeTheirs).toEqual(removeUnknown);
    expect(removeTheirs).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND', httpStatus: 404 });
    expect((await readToken(gateway, theirs.privateKey, theirToken.id)).data).toBe('secret');
  });

  it('hides an expired token from every read at once, and the sweeper purges it later', async () => {
    const { privateKey } = await tenant();
    const token = await createToken(gateway, privateKey, {
      type: 'TOKEN',
      data: 'short-lived',
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(new Date(token.expiresAt).getTime()).toBeGreaterThan(Date.now());
    expect((await readToken(gateway, privateKey, token.id)).data).toBe('short-lived');

    await expireNow(gateway, 'tokens', token.id);
    expect(await readToken(gateway, privateKey, token.id)).toBeNull();
    expect(await deleteToken(gateway, privateKey, token.id)).toMatchObject({ code: 'NOT_FOUND' });
    const stored = () => gateway.app.database.db.selectFrom('tokens').select('id').where('id', '=', token.id).execute();
    expect(await stored()).toHaveLength(1);

    const swept = await gateway.app.services.transactions.sweepExpired();
    expect(swept.purgedTokens).toBeGreaterThanOrEqual(1);
    expect(await stored()).toHaveLength(0);
  });
});

describe('deleteToken', () => {
  it('deletes a token, which then reads as null and cannot be deleted again', async () => {
    const { privateKey } = await tenant();
    const token = await createToken(gateway, privateKey, { type: 'TOKEN', data: 'bye' });
    expect(await deleteToken(gateway, privateKey, token.id)).toEqual({ __typename: 'Token', id: token.id });
    expect(await readToken(gateway, privateKey, token.id)).toBeNull();
    expect(await deleteToken(gateway, privateKey, token.id)).toMatchObject({ __typename: 'NotFoundError' });
  });

  it('needs token:delete', async () => {
    const t = await tenant();
    const readOnly = await applicationKey(gateway, t, 'PRIVATE', ['token:create', 'token:read']);
    const token = await createToken(gateway, readOnly, { type: 'TOKEN', data: 'x' });
    const result = await gateway.gql(
      'mutation($id: UUID!) { deleteToken(id: $id) { __typename } }',
      { id: token.id },
      readOnly,
    );
    expect(errorCode(result)).toBe('FORBIDDEN');
  });
});
