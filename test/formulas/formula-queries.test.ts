import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OFFICIAL_FORMULA_IDS } from '../../src/formulas/official.ts';
import type { RunOutcome } from '../../src/runtime/pool.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { createApplication, createFormula, GET_FORMULA, UNKNOWN_ID } from './helpers.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

const LIST = `query($name: String, $first: Int, $after: String) {
  reactorFormulas(name: $name, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id name type } } } }`;
const OFFICIAL_IDS = Object.values(OFFICIAL_FORMULA_IDS);

async function list(key: string, variables: Record<string, unknown> = {}) {
  const result = await gateway.gql(LIST, variables, key);
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return result.data?.reactorFormulas;
}

describe('reactorFormulas and reactorFormula', () => {
  it("lists the official formulas first, then the tenant's own, never another tenant's", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const own = await createFormula(gateway, mine.managementKey, { name: 'Mine' });
    await createFormula(gateway, theirs.managementKey, { name: 'Theirs' });
    const page = await list(mine.managementKey);
    expect(page.edges.map((e: any) => e.node.id)).toEqual([...OFFICIAL_IDS, own.id]);
    expect(page.edges.map((e: any) => e.node.type)).toEqual(['OFFICIAL', 'OFFICIAL', 'OFFICIAL', 'PRIVATE']);
    expect(page.totalCount).toBe(4);
  });

  it('searches names case-insensitively, with * as a wildcard and % _ taken literally', async () => {
    const tenant = await gateway.createTenant();
    for (const name of ['Stripe Charge', 'stripe refund', 'Adyen 100%', 'Adyen 1000']) {
      await createFormula(gateway, tenant.managementKey, { name });
    }
    const names = async (name: string) =>
      (await list(tenant.managementKey, { name })).edges.map((e: any) => e.node.name);
    expect(await names('STRIPE')).toEqual(['Stripe Charge', 'stripe refund']);
    expect(await names('stripe*charge')).toEqual(['Stripe Charge']);
    expect(await names('100%')).toEqual(['Adyen 100%']);
    expect(await names('card check')).toEqual(['Card Check']);
    expect((await list(tenant.managementKey, { name: 'adyen' })).totalCount).toBe(2);
  });

  it('pages with first/after, stable when rows are inserted between pages', async () => {
    const tenant = await gateway.createTenant();
    for (const name of ['a', 'b', 'c']) await createFormula(gateway, tenant.managementKey, { name });
    const first = await list(tenant.managementKey, { first: 4 });
    expect(first.edges.map((e: any) => e.node.name)).toEqual(['Echo', 'Card Check', 'HMAC-SHA256', 'a']);
    expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    await createFormula(gateway, tenant.managementKey, { name: 'd' });
    const second = await list(tenant.managementKey, { first: 4, after: first.pageInfo.endCursor });
    expect(second.edges.map((e: any) => e.node.name)).toEqual(['b', 'c', 'd']);
    expect(second.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
  });

  it('refuses first over 100 and a cursor it did not issue as BAD_REQUEST', async () => {
    const tenant = await gateway.createTenant();
    expect(errorCode(await gateway.gql(LIST, { first: 101 }, tenant.managementKey))).toBe('BAD_REQUEST');
    expect(errorCode(await gateway.gql(LIST, { after: 'bogus' }, tenant.managementKey))).toBe('BAD_REQUEST');
    expect((await list(tenant.managementKey, { first: 100 })).edges).toHaveLength(3);
  });

  it("reads another tenant's formula as null, exactly like an unknown id", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const their = await createFormula(gateway, theirs.managementKey);
    const forTheirs = await gateway.gql(GET_FORMULA, { id: their.id }, mine.managementKey);
    expect(forTheirs).toEqual(await gateway.gql(GET_FORMULA, { id: UNKNOWN_ID }, mine.managementKey));
    expect(forTheirs).toEqual({ data: { reactorFormula: null } });
  });

  it('reads official formulas, with their code, to every tenant', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(GET_FORMULA, { id: OFFICIAL_FORMULA_IDS.hmacSha256 }, tenant.managementKey);
    expect(result.data?.reactorFormula).toMatchObject({
      type: 'OFFICIAL',
      formulaStatus: 'VERIFIED',
      createdBy: null,
      configuration: [{ name: 'SECRET', type: 'STRING' }],
      requestParameters: [{ name: 'value', type: 'STRING', optional: false }],
    });
    expect(result.data?.reactorFormula.formulaCode).toContain("createHmac('sha256'");
  });

  it('requires reactor:read (a PUBLIC key gets FORBIDDEN)', async () => {
    const tenant = await gateway.createTenant();
    const browser = await createApplication(gateway, tenant.managementKey, 'PUBLIC');
    expect(errorCode(await gateway.gql(LIST, {}, browser.key))).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql(GET_FORMULA, { id: OFFICIAL_FORMULA_IDS.echo }, browser.key))).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql(LIST, {}))).toBe('UNAUTHENTICATED');
  });
});

/** Runs an official formula's stored code in the gateway's own sandbox, as `react` will. */
async function runOfficial(
  id: string,
  args: unknown,
  configuration: Record<string, unknown> = {},
): Promise<RunOutcome> {
  const row = await gateway.app.database.db
    .selectFrom('reactor_formulas')
    .select(['code', 'code_hash'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  expect(row.code_hash).toBe(createHash('sha256').update(row.code).digest('hex'));
  return gateway.app.services.runtime.run({
    tenantId: 'official-formula-tests',
    formulaId: id,
    code: row.code,
    codeHash: row.code_hash,
    args,
    configuration,
    bt: null,
    timeoutMs: 5_000,
  });
}

describe('official formulas (seeded by migration 0002, run in the sandbox)', () => {
  it('Echo returns its args', async () => {
    const args = { card: { number: '4242' }, n: 1 };
    expect(await runOfficial(OFFICIAL_FORMULA_IDS.echo, args)).toMatchObject({ ok: true, raw: args });
  });

  it('Card Check reports brand, bin, last4 and Luhn validity, never the number', async () => {
    const check = async (number: unknown, extra: Record<string, unknown> = {}) => {
      const outcome = await runOfficial(OFFICIAL_FORMULA_IDS.cardCheck, { card: { number, ...extra } });
      if (!outcome.ok) throw new Error(JSON.stringify(outcome.error));
      return outcome.raw as Record<string, unknown>;
    };
    expect(await check('4242424242424242', { expiration_month: 12, expiration_year: 2099 })).toEqual({
      brand: 'visa',
      bin: '424242',
      last4: '4242',
      valid: true,
      expired: false,
    });
    expect(await check('4242 4242 4242 4241')).toMatchObject({ brand: 'visa', valid: false, expired: null });
    expect(await check('5555555555554444')).toMatchObject({ brand: 'mastercard', valid: true });
    expect(await check('2223003122003222')).toMatchObject({ brand: 'mastercard', valid: true });
    expect(await check('378282246310005')).toMatchObject({ brand: 'american-express', last4: '0005', valid: true });
    expect(await check('6011111111111117')).toMatchObject({ brand: 'discover', valid: true });
    expect(await check('4000056655665556', { expiration_month: 1, expiration_year: 2020 })).toMatchObject({
      expired: true,
    });
    expect(JSON.stringify(await check('4242424242424242'))).not.toContain('4242424242424242');
  });

  it('Card Check throws the SDK BadRequestError when the card number is missing or not digits', async () => {
    const missing = await runOfficial(OFFICIAL_FORMULA_IDS.cardCheck, { card: { expiration_month: 1 } });
    expect(missing).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST', status: 400, errors: { 'card.number': ['is required'] } },
    });
    const noCard = await runOfficial(OFFICIAL_FORMULA_IDS.cardCheck, {});
    expect(noCard).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST' } });
    const letters = await runOfficial(OFFICIAL_FORMULA_IDS.cardCheck, { card: { number: '4242abcd' } });
    expect(letters).toMatchObject({ ok: false, error: { errors: { 'card.number': ['must contain only digits'] } } });
  });

  it('HMAC-SHA256 matches node:crypto under the configured SECRET', async () => {
    const outcome = await runOfficial(OFFICIAL_FORMULA_IDS.hmacSha256, { value: 'héllo wörld' }, { SECRET: 's3cr3t' });
    const expected = createHmac('sha256', 's3cr3t').update('héllo wörld', 'utf8').digest('hex');
    expect(outcome).toMatchObject({ ok: true, raw: { hmac: expected, algorithm: 'HMAC-SHA256', encoding: 'hex' } });
  });

  it('HMAC-SHA256 refuses a missing SECRET or value with BAD_REQUEST', async () => {
    const noSecret = await runOfficial(OFFICIAL_FORMULA_IDS.hmacSha256, { value: 'v' }, {});
    expect(noSecret).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST', errors: { SECRET: ['is required'] } } });
    const noValue = await runOfficial(OFFICIAL_FORMULA_IDS.hmacSha256, {}, { SECRET: 's' });
    expect(noValue).toMatchObject({ ok: false, error: { code: 'BAD_REQUEST', errors: { value: ['is required'] } } });
  });
});
