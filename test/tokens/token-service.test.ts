import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/service.ts';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../../src/errors.ts';
import { openSealedArgs } from '../../src/tokens/sealing.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import {
  applicationKey,
  card,
  commit,
  createToken,
  createTransaction,
  deleteToken,
  expireNow,
  principalFor,
  readToken,
  UNKNOWN_ID,
} from './support.ts';

/** prepareArgs and tokenizeResult, the two calls `react` makes, against real rows. */

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

const MAX_TOKENS = 100;

async function tenantWithPrincipal(): Promise<{ key: string; principal: Principal; tenantId: string }> {
  const tenant = await gateway.createTenant();
  return {
    key: tenant.privateKey,
    principal: await principalFor(gateway, tenant.privateKey),
    tenantId: tenant.tenantId,
  };
}

/** The args a formula gets, by the path `react` takes: prepared here, sealed tokens opened as the worker opens them. */
async function detokenize(principal: Principal, args: unknown, transactionId?: string) {
  const prepared = await gateway.app.services.tokens.prepareArgs(principal, args, {
    transactionId,
    maxTokens: MAX_TOKENS,
  });
  return prepared.sealed ? openSealedArgs(structuredClone(prepared.args), prepared.sealed) : prepared.args;
}

async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

async function countTokens(tenantId: string): Promise<number> {
  const rows = await gateway.app.database.db
    .selectFrom('tokens')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .execute();
  return rows.length;
}

describe('prepareArgs (detokenization)', () => {
  it('turns a whole-string expression of a card token into the card object', async () => {
    const { key, principal } = await tenantWithPrincipal();
    const token = await createToken(gateway, key, { type: 'CARD', data: card() });
    const args = { card: `{{ ${token.id} }}`, customer_id: 'c-1' };
    expect(await detokenize(principal, args)).toEqual({ card: card(), customer_id: 'c-1' });
  });

  it("reads a field with {{ token: id | json: '$.data.number' }}", async () => {
    const { key, principal } = await tenantWithPrincipal();
    const token = await createToken(gateway, key, { type: 'CARD', data: card() });
    const args = {
      number: `{{ token: ${token.id} | json: '$.data.number' }}`,
      last4: `{{ token: ${token.id} | json: '$.data.number' | last4 }}`,
    };
    expect(await detokenize(principal, args)).toEqual({ number: card().number, last4: '4242' });
  });

  it('loads 100 distinct tokens in one call', async () => {
    const { principal } = await tenantWithPrincipal();
    const values = Object.fromEntries(Array.from({ length: MAX_TOKENS }, (_, i) => [`v${i}`, `value-${i}`]));
    const ids = (await gateway.app.services.tokens.tokenizeResult(principal, values)) as Record<string, string>;
    const args = Object.fromEntries(Object.entries(ids).map(([name, id]) => [name, `{{ ${id} }}`]));
    expect(await detokenize(principal, args)).toEqual(values);
  });

  it('refuses 101 distinct tokens as BAD_REQUEST', async () => {
    const { principal } = await tenantWithPrincipal();
    const values = Object.fromEntries(Array.from({ length: MAX_TOKENS }, (_, i) => [`v${i}`, `value-${i}`]));
    const ids = (await gateway.app.services.tokens.tokenizeResult(principal, values)) as Record<string, string>;
    const one = (await gateway.app.services.tokens.tokenizeResult(principal, { extra: 'one more' })) as {
      extra: string;
    };
    const args = [...Object.values(ids), one.extra].map((id) => `{{ ${id} }}`);
    const error = await rejection(detokenize(principal, args));
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.message).toContain('At most 100 tokens');
  });

  it("reports another tenant's token exactly like an unknown one: BAD_REQUEST naming the expression", async () => {
    const mine = await tenantWithPrincipal();
    const theirs = await tenantWithPrincipal();
    const theirToken = await createToken(gateway, theirs.key, { type: 'TOKEN', data: 'secret' });
    const theirError = await rejection(detokenize(mine.principal, { x: `{{ ${theirToken.id} }}` }));
    const unknownError = await rejection(detokenize(mine.principal, { x: `{{ ${UNKNOWN_ID} }}` }));
    expect(theirError).toBeInstanceOf(BadRequestError);
    const anonymise = (error: BadRequestError, id: string) => JSON.stringify(error.toShape()).replaceAll(id, '<id>');
    expect(anonymise(theirError, theirToken.id)).toBe(anonymise(unknownError, UNKNOWN_ID));
    expect(theirError.errors).toHaveProperty(['args.x']);
    expect(theirError.message).toContain(`{{ ${theirToken.id} }}`);
  });

  it('refuses a key without token:use with FORBIDDEN, but passes args without expressions through', async () => {
    const tenant = await gateway.createTenant();
    const noUse = await applicationKey(gateway, tenant, 'PRIVATE', ['token:create', 'token:read', 'reactor:invoke']);
    const principal = await principalFor(gateway, noUse);
    const token = await createToken(gateway, noUse, { type: 'TOKEN', data: 'x' });
    expect(await rejection(detokenize(principal, { x: `{{ ${token.id} }}` }))).toBeInstanceOf(ForbiddenError);
    expect(await detokenize(principal, { plain: 'text' })).toEqual({ plain: 'text' });
  });

  it('treats an expired token as not found', async () => {
    const { key, principal } = await tenantWithPrincipal();
    const token = await createToken(gateway, key, {
      type: 'TOKEN',
      data: 'x',
      expiresAt: new Date(Date.now() + 60_000),
    });
    await expireNow(gateway, 'tokens', token.id);
    expect(await rejection(detokenize(principal, { x: `{{ ${token.id} }}` }))).toBeInstanceOf(BadRequestError);
  });

  it('does not see a token of an uncommitted transaction outside it, and sees it inside and after commit', async () => {
    const { key, principal } = await tenantWithPrincipal();
    const tx = await createTransaction(gateway, key);
    const token = await createToken(gateway, key, { type: 'TOKEN', data: 'pending' }, tx.id);
    const args = { x: `{{ ${token.id} }}` };
    expect(await rejection(detokenize(principal, args))).toBeInstanceOf(BadRequestError);
    expect(await detokenize(principal, args, tx.id)).toEqual({ x: 'pending' });
    await commit(gateway, key, tx.id);
    expect(await detokenize(principal, args)).toEqual({ x: 'pending' });
  });

  it('still detokenizes a token whose delete is pending in an open transaction', async () => {
    const { key, principal } = await tenantWithPrincipal();
    const token = await createToken(gateway, key, { type: 'TOKEN', data: 'still here' });
    const tx = await createTransaction(gateway, key);
    expect((await deleteToken(gateway, key, token.id, tx.id)).__typename).toBe('Token');
    expect(await detokenize(principal, { x: `{{ ${token.id} }}` })).toEqual({ x: 'still here' });
    expect(await rejection(detokenize(principal, { x: `{{ ${token.id} }}` }, tx.id))).toBeInstanceOf(BadRequestError);
  });
});

describe('tokenizeResult', () => {
  it('turns token requests into those tokens and other values into TOKEN tokens, keeping the shape', async () => {
    const { key, principal } = await tenantWithPrincipal();
    const result = (await gateway.app.services.tokens.tokenizeResult(principal, {
      card: { type: 'card', data: card(), metadata: { source: 'formula' } },
      ssn: '123-45-6789',
      nested: { pin: 1234, flags: [true, false], empty: null },
    })) as any;
    expect(result.nested.empty).toBeNull();
    const cardToken = await readToken(gateway, key, result.card);
    expect(cardToken).toMatchObject({
      type: 'CARD',
      data: card(),
      metadata: { source: 'formula' },
      containers: ['/pci/high/'],
    });
    expect(await readToken(gateway, key, result.ssn)).toMatchObject({ type: 'TOKEN', data: '123-45-6789' });
    expect(await readToken(gateway, key, result.nested.pin)).toMatchObject({ type: 'TOKEN', data: 1234 });
    expect(await readToken(gateway, key, result.nested.flags)).toMatchObject({ type: 'TOKEN', data: [true, false] });
  });

  it('stores nothing when one value is invalid, and names it by path', async () => {
    const { principal, tenantId } = await tenantWithPrincipal();
    const error = await rejection(
      gateway.app.services.tokens.tokenizeResult(principal, {
        good: 'fine',
        card: { type: 'CARD', data: card({ number: '1234' }) },
      }),
    );
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.errors).toHaveProperty(['tokenize.card.data.number']);
    expect(await countTokens(tenantId)).toBe(0);
  });

  it('creates the tokens inside a transaction, invisible until commit', async () => {
    const { key, principal } = await tenantWithPrincipal();
    const tx = await createTransaction(gateway, key);
    const result = (await gateway.app.services.tokens.tokenizeResult(principal, { a: 'x' }, tx.id)) as any;
    expect(await readToken(gateway, key, result.a)).toBeNull();
    expect((await readToken(gateway, key, result.a, tx.id)).data).toBe('x');
    await commit(gateway, key, tx.id);
    expect((await readToken(gateway, key, result.a)).data).toBe('x');
  });

  it('refuses a committed transaction with CONFLICT and an unknown one with NOT_FOUND', async () => {
    const { key, principal, tenantId } = await tenantWithPrincipal();
    const tx = await createTransaction(gateway, key);
    await commit(gateway, key, tx.id);
    const tokenize = gateway.app.services.tokens.tokenizeResult;
    const conflict = await rejection(tokenize(principal, { a: 'x' }, tx.id));
    expect(conflict).toBeInstanceOf(ConflictError);
    expect(conflict.message).toContain('COMMITTED');
    expect(await rejection(tokenize(principal, { a: 'x' }, UNKNOWN_ID))).toBeInstanceOf(NotFoundError);
    expect(await countTokens(tenantId)).toBe(0);
  });

  it('returns null and undefined as they are, creating nothing', async () => {
    const { principal, tenantId } = await tenantWithPrincipal();
    expect(await gateway.app.services.tokens.tokenizeResult(principal, null)).toBeNull();
    expect(await gateway.app.services.tokens.tokenizeResult(principal, undefined)).toBeUndefined();
    expect(await countTokens(tenantId)).toBe(0);
  });
});
