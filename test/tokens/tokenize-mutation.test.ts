import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import {
  applicationKey,
  CARD_NUMBER,
  card,
  commit,
  createTransaction,
  listAllTokens,
  readToken,
  rollback,
  tenantWithTokenKey,
} from './support.ts';

// The `tokenize` mutation: BT's Tokenize endpoint, the rule of a formula's tokenize block, all or nothing.
const TOKENIZE = `mutation($request: JSON!, $tx: UUID) { tokenize(request: $request, transactionId: $tx) {
  __typename ... on TokenizePayload { tokens } ... on Error { code httpStatus: status message errors } } }`;

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

async function tokenize(key: string, request: unknown, tx?: string): Promise<any> {
  const response = await gateway.gql<any>(TOKENIZE, { request, tx }, key);
  if (response.errors) throw new Error(JSON.stringify(response.errors));
  return response.data?.tokenize;
}

async function count(key: string): Promise<number> {
  return (await listAllTokens(gateway, key)).totalCount;
}

describe('tokenize', () => {
  it('turns a nested request into tokens and answers its shape with their ids', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const result = await tokenize(key, {
      name: 'Ada',
      tags: ['vip', 'early'],
      payment: {
        card: { type: 'card', data: card(), metadata: { customer: 'c1' } },
        note: null,
      },
      age: 36,
    });
    expect(result.__typename).toBe('TokenizePayload');
    const { name, tags, payment, age } = result.tokens;
    expect(payment.note).toBeNull();
    const read = async (id: string) => readToken(gateway, key, id);
    expect(await read(name)).toMatchObject({ type: 'TOKEN', data: 'Ada', containers: ['/general/high/'] });
    expect(await read(tags)).toMatchObject({ type: 'TOKEN', data: ['vip', 'early'] });
    expect(await read(age)).toMatchObject({ type: 'TOKEN', data: 36 });
    expect(await read(payment.card)).toMatchObject({
      type: 'CARD',
      data: card(),
      metadata: { customer: 'c1' },
      containers: ['/pci/high/'],
      mask: expect.objectContaining({ last4: CARD_NUMBER.slice(-4) }),
    });
    expect(await count(key)).toBe(4);
  });

  it('stores nothing when one token is invalid, and names it by its path', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const result = await tokenize(key, {
      good: 'fine',
      payment: { card: { type: 'card', data: card({ number: '4242424242424241' }) } },
    });
    expect(result).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST', httpStatus: 400 });
    expect(Object.keys(result.errors)).toEqual(['request.payment.card.data.number']);
    expect(await count(key)).toBe(0);
  });

  it('refuses more than 100 tokens in one request, storing none', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const request = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`v${i}`, `value ${i}`]));
    const result = await tokenize(key, request);
    expect(result).toMatchObject({ code: 'BAD_REQUEST', message: 'A tokenize request may create at most 100 tokens.' });
    expect(await count(key)).toBe(0);
    expect(Object.keys((await tokenize(key, { ...request, v100: undefined })).tokens)).toHaveLength(100);
  });

  it('creates inside a transaction: seen there, by everyone on commit, gone on rollback', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const tx = (await createTransaction(gateway, key)).id;
    const kept = (await tokenize(key, { secret: 'kept' }, tx)).tokens.secret;
    expect(await readToken(gateway, key, kept)).toBeNull();
    expect((await readToken(gateway, key, kept, tx)).data).toBe('kept');
    await commit(gateway, key, tx);
    expect((await readToken(gateway, key, kept)).data).toBe('kept');

    const undone = (await createTransaction(gateway, key)).id;
    const dropped = (await tokenize(key, { secret: 'dropped' }, undone)).tokens.secret;
    await rollback(gateway, key, undone);
    expect(await readToken(gateway, key, dropped, undone)).toBeNull();
    expect(await count(key)).toBe(1);
  });

  it('needs token:create, and keeps a scoped application to its containers', async () => {
    const { tenant, key } = await tenantWithTokenKey(gateway);
    // A browser key may tokenize, as it may createToken.
    const browser = await applicationKey(gateway, tenant, 'PUBLIC', ['token:create']);
    expect((await tokenize(browser, { email: 'a@b.c' })).__typename).toBe('TokenizePayload');
    const reader = await applicationKey(gateway, tenant, 'PRIVATE', ['token:read']);
    const refused = await gateway.gql(TOKENIZE, { request: { email: 'a@b.c' } }, reader);
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const scoped = await applicationKey(gateway, tenant, 'PRIVATE', ['token:create'], ['/pci/']);
    const before = await count(key);
    const outside = await tokenize(scoped, { card: { type: 'card', data: card() }, email: 'a@b.c' });
    expect(outside).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    expect(await count(key)).toBe(before);
    const inside = await tokenize(scoped, { card: { type: 'card', data: card() } });
    expect((await readToken(gateway, key, inside.tokens.card)).type).toBe('CARD');
  });
});
