import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFormula,
  createReactor,
  createReactorWithCode,
  createToken,
  REACT,
  REACT_ASYNC,
} from '../support/fixtures.ts';
import { errorCode, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

let gateway: TestGateway;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { REACT_TIMEOUT_MS: '1500', MAX_ARGS_BYTES: '20000' } });
  tenant = await gateway.createTenant();
});
afterAll(() => gateway?.close());

async function react(reactorId: string, args?: unknown, key = tenant.privateKey, tx?: string) {
  const result = await gateway.gql<any>(REACT, { id: reactorId, args, tx }, key);
  return result.data?.react ?? result;
}

const SEED_FORMULA = `
module.exports = async function (req) {
// Do something with \`req.configuration.SERVICE_API_KEY\`
return {
raw: {
foo: 'bar'
}
};
};
`;

const CARD = { number: '4242424242424242', expiration_month: 12, expiration_year: 2030, cvc: '123' };

describe('react: the seeds', () => {
  it("runs the seeds' formula example unchanged", async () => {
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, SEED_FORMULA, {
      configuration: [{ name: 'SERVICE_API_KEY', type: 'STRING' }],
      values: { SERVICE_API_KEY: 'key_abcd1234' },
    });
    expect(await react(reactorId)).toMatchObject({ __typename: 'ReactorResponse', raw: { foo: 'bar' }, tokens: null });
  });

  it('hands the formula its configuration and the detokenized card of a `{{ token }}` expression', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      `module.exports = async function (req) {
        const { card, customer_id } = req.args;
        return { raw: { last4: card.number.slice(-4), month: card.expiration_month, customer_id, key: req.configuration.SERVICE_API_KEY } };
      };`,
      { configuration: [{ name: 'SERVICE_API_KEY', type: 'STRING' }], values: { SERVICE_API_KEY: 'key_abcd1234' } },
    );
    const tokenId = await createToken(gateway, tenant.privateKey, { type: 'CARD', data: CARD });
    const result = await react(reactorId, { card: `{{${tokenId}}}`, customer_id: 'myCustomerId1234' });
    expect(result.raw).toEqual({ last4: '4242', month: 12, customer_id: 'myCustomerId1234', key: 'key_abcd1234' });
  });

  it("validates the seeds' nested request parameters after detokenization", async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => ({ raw: req.args });',
      {
        requestParameters: [
          { name: 'request_id', type: 'STRING' },
          { name: 'user.first_name', type: 'STRING' },
          { name: 'user.last_name', type: 'STRING' },
          { name: 'user.address.city', type: 'STRING', optional: true },
          { name: 'user.address.state', type: 'STRING', optional: true },
        ],
      },
    );
    const args = {
      request_id: 'd29e8a27-bfdb-4d26-9f13-29bdeafc9bfe',
      user: { first_name: 'John', last_name: 'Doe', address: { city: 'Seattle', state: 'WA' } },
    };
    expect((await react(reactorId, args)).raw).toEqual(args);

    const missing = await react(reactorId, { request_id: 'x', user: { first_name: 'John' } });
    expect(missing).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST', status: 400 });
    expect(Object.keys(missing.errors)).toEqual(['args.user.last_name']);

    // The last name may come from a token: validation happens after detokenization.
    const lastName = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'Doe' });
    const fromToken = await react(reactorId, {
      request_id: 'x',
      user: { first_name: 'John', last_name: `{{ ${lastName} }}` },
    });
    expect(fromToken.raw.user.last_name).toBe('Doe');
  });

  it('casts "123" to 123 for a NUMBER parameter and refuses what cannot be cast', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => ({ raw: { amount: req.args.amount, kind: typeof req.args.amount, flag: req.args.flag } });',
      {
        requestParameters: [
          { name: 'amount', type: 'NUMBER' },
          { name: 'flag', type: 'BOOLEAN', optional: true },
        ],
      },
    );
    expect((await react(reactorId, { amount: '123', flag: 'true' })).raw).toEqual({
      amount: 123,
      kind: 'number',
      flag: true,
    });
    const bad = await react(reactorId, { amount: 'non-numeric' });
    expect(bad.code).toBe('BAD_REQUEST');
    expect(bad.errors).toHaveProperty(['args.amount']);
  });
});

describe('react: tokenize', () => {
  it('turns the tokenize block into tokens and returns their ids in the same shape', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      "module.exports = async () => ({ raw: { ok: true }, tokenize: { secret: 'shh-1234' } });",
    );
    const result = await react(reactorId);
    expect(result.raw).toEqual({ ok: true });
    const tokenId = result.tokens?.secret?.id ?? result.tokens?.secret;
    expect(typeof tokenId).toBe('string');
    const read = await gateway.gql<any>(
      'query($id: UUID!) { token(id: $id) { data } }',
      { id: tokenId },
      tenant.privateKey,
    );
    expect(read.data?.token.data).toBe('shh-1234');
  });
});

describe('react: errors', () => {
  const sdk = "const sdk = require('@basis-theory/basis-theory-reactor-formulas-sdk-js');";
  const cases: [string, string, string, number][] = [
    ['BadRequestError', "throw new sdk.BadRequestError('bad card');", 'BAD_REQUEST', 400],
    ['AuthenticationError', "throw new sdk.AuthenticationError('no');", 'UNAUTHENTICATED', 401],
    [
      'InvalidPaymentMethodError',
      "throw new sdk.InvalidPaymentMethodError('declined');",
      'INVALID_PAYMENT_METHOD',
      402,
    ],
    ['AuthorizationError', "throw new sdk.AuthorizationError('nope');", 'FORBIDDEN', 403],
    ['RateLimitError', "throw new sdk.RateLimitError('slow down');", 'RATE_LIMITED', 429],
    ['ReactorRuntimeError', "throw new sdk.ReactorRuntimeError('boom');", 'REACTOR_RUNTIME_ERROR', 500],
    ['a plain Error', "throw new Error('plain failure');", 'REACTOR_RUNTIME_ERROR', 500],
  ];
  for (const [name, body, code, status] of cases) {
    it(`maps ${name} thrown by formula code to ${code} (${status})`, async () => {
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        `${sdk} module.exports = async () => { ${body} };`,
      );
      const result = await react(reactorId);
      expect(result).toMatchObject({ code, status });
      expect(JSON.stringify(result)).not.toMatch(/at .*\(|node:internal|\/work\//);
    });
  }

  it("passes the SDK's errors map through", async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      `${sdk} module.exports = async () => { throw new sdk.BadRequestError({ card: ['expired'] }); };`,
    );
    expect((await react(reactorId)).errors).toEqual({ card: ['expired'] });
  });

  it('stops a formula that runs past the timeout with REACTOR_TIMEOUT', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { while (true) {} };',
    );
    const started = Date.now();
    expect((await react(reactorId)).code).toBe('REACTOR_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1500 + 1000);
  });

  it('refuses args over the payload limit with BAD_REQUEST', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const result = await react(reactorId, { blob: 'x'.repeat(25_000) });
    expect(result).toMatchObject({ code: 'BAD_REQUEST' });
    expect(result.errors).toHaveProperty('args');
  });

  it('refuses an unknown token expression with BAD_REQUEST naming it, like a token of another tenant', async () => {
    const other = await gateway.createTenant();
    const theirs = await createToken(gateway, other.privateKey, { type: 'TOKEN', data: 'theirs' });
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => ({ raw: req.args });',
    );
    const foreign = await react(reactorId, { v: `{{ ${theirs} }}` });
    const unknown = await react(reactorId, { v: '{{ 01a204cc-a83d-77b0-9658-e28eab878311 }}' });
    expect(foreign.code).toBe('BAD_REQUEST');
    expect(unknown.code).toBe('BAD_REQUEST');
    expect(foreign.message).toContain(theirs);
    expect(unknown.message).toContain('01a204cc-a83d-77b0-9658-e28eab878311');
    expect(foreign.message.replaceAll(theirs, 'ID')).toBe(
      unknown.message.replaceAll('01a204cc-a83d-77b0-9658-e28eab878311', 'ID'),
    );
  });

  it("answers NOT_FOUND for another tenant's reactor exactly as for an unknown id", async () => {
    const other = await gateway.createTenant();
    const theirs = await createReactorWithCode(
      gateway,
      other.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const foreign = await react(theirs);
    const unknown = await react('01a204cc-a83d-77b0-9658-e28eab878312');
    expect(foreign).toEqual(unknown);
    expect(foreign.code).toBe('NOT_FOUND');
  });

  it('is FORBIDDEN for a key without reactor:invoke or token:use', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const created = await gateway.gql<any>(
      `mutation { createApplication(input: { name: "reader", type: PRIVATE, permissions: ["token:read"] }) {
        ... on CreateApplicationPayload { key } } }`,
      {},
      tenant.managementKey,
    );
    const result = await gateway.gql(REACT, { id: reactorId }, created.data?.createApplication.key);
    expect(errorCode(result)).toBe('FORBIDDEN');
  });

  it('shows console output of the formula in development mode', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      "module.exports = async () => { console.log('hello', 42); return { raw: null }; };",
    );
    expect((await react(reactorId)).logs).toEqual([{ level: 'log', message: 'hello 42' }]);
  });
});

describe('react after a change', () => {
  it('uses the new configuration after patchReactor and the new code after updateReactorFormula', async () => {
    const formulaId = await createFormula(gateway, tenant.managementKey, {
      code: 'module.exports = async (req) => ({ raw: { v: 1, greeting: req.configuration.GREETING } });',
      configuration: [{ name: 'GREETING', type: 'STRING' }],
    });
    const reactorId = await createReactor(gateway, tenant.managementKey, {
      formulaId,
      configuration: { GREETING: 'hi' },
    });
    expect((await react(reactorId)).raw).toEqual({ v: 1, greeting: 'hi' });

    const patched = await gateway.gql<any>(
      'mutation($id: UUID!) { patchReactor(id: $id, input: { configuration: { GREETING: "hello" } }) { __typename } }',
      { id: reactorId },
      tenant.managementKey,
    );
    expect(patched.data?.patchReactor.__typename).toBe('Reactor');
    expect((await react(reactorId)).raw).toEqual({ v: 1, greeting: 'hello' });

    const updated = await gateway.gql<any>(
      `mutation($id: UUID!, $input: UpdateReactorFormulaInput!) { updateReactorFormula(id: $id, input: $input) { __typename } }`,
      {
        id: formulaId,
        input: {
          name: 'v2',
          type: 'PRIVATE',
          code: 'module.exports = async (req) => ({ raw: { v: 2, greeting: req.configuration.GREETING } });',
          configuration: [{ name: 'GREETING', type: 'STRING' }],
          requestParameters: [],
        },
      },
      tenant.managementKey,
    );
    expect(updated.data?.updateReactorFormula.__typename).toBe('ReactorFormula');
    expect((await react(reactorId)).raw).toEqual({ v: 2, greeting: 'hello' });

    await gateway.gql(
      'mutation($id: UUID!) { deleteReactor(id: $id) { __typename } }',
      { id: reactorId },
      tenant.managementKey,
    );
    expect((await react(reactorId)).code).toBe('NOT_FOUND');
  });

  it("refuses a reactor whose configuration the formula's new contract no longer accepts, until it is patched", async () => {
    const code = 'module.exports = async (req) => ({ raw: req.configuration });';
    const formulaId = await createFormula(gateway, tenant.managementKey, {
      code,
      configuration: [{ name: 'MODE', type: 'STRING' }],
    });
    const reactorId = await createReactor(gateway, tenant.managementKey, {
      formulaId,
      configuration: { MODE: '3' },
    });
    expect((await react(reactorId)).raw).toEqual({ MODE: '3' });

    const changeContract = async (configuration: { name: string; type: string }[]) => {
      const updated = await gateway.gql<any>(
        `mutation($id: UUID!, $input: UpdateReactorFormulaInput!) { updateReactorFormula(id: $id, input: $input) {
          __typename } }`,
        { id: formulaId, input: { name: 'v2', type: 'PRIVATE', code, configuration, requestParameters: [] } },
        tenant.managementKey,
      );
      expect(updated.data?.updateReactorFormula.__typename).toBe('ReactorFormula');
    };
    // A type the stored value casts to: the formula gets it in the new type.
    await changeContract([{ name: 'MODE', type: 'NUMBER' }]);
    expect((await react(reactorId)).raw).toEqual({ MODE: 3 });

    // A renamed option: the stored one is undeclared now, the new one missing.
    await changeContract([{ name: 'LEVEL', type: 'NUMBER' }]);
    const refused = await react(reactorId, {});
    expect(refused).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST', status: 400 });
    expect(refused.message).toMatch(/no longer satisfies its formula's configuration contract/);
    expect(refused.errors).toEqual({
      'configuration.LEVEL': ['is required'],
      'configuration.MODE': ['is not a configuration option of the formula'],
    });
    // reactAsync refuses it before queueing, rather than queueing a run that can only fail.
    const queued = await gateway.gql<any>(REACT_ASYNC, { id: reactorId }, tenant.privateKey);
    expect(queued.data?.reactAsync).toMatchObject({ __typename: 'BadRequestError', errors: refused.errors });

    const patched = await gateway.gql<any>(
      `mutation($id: UUID!) { patchReactor(id: $id, input: { configuration: { MODE: null, LEVEL: "7" } }) {
        __typename } }`,
      { id: reactorId },
      tenant.managementKey,
    );
    expect(patched.data?.patchReactor.__typename).toBe('Reactor');
    expect((await react(reactorId)).raw).toEqual({ LEVEL: 7 });
  });
});
