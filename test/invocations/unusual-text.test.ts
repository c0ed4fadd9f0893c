import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNSTORABLE_TEXT } from '../../src/storable-text.ts';
import { createFormula, createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { storedRequest } from '../support/requests.ts';
import { until } from '../support/until.ts';

/**
 * Strings Postgres text and jsonb cannot hold: the NUL character and unpaired UTF-16 surrogates (src/db/storable.ts).
 * What passes through the gateway (args, a formula's result or error) comes back exactly, sync or async; what would
 * be stored in a text or jsonb column is refused as BAD_REQUEST on its field, never a failed query.
 */

const NUL = 'a\u0000b';
const LONE_HIGH = 'x\ud800y';
const LONE_LOW = '\udc00';

let gateway: TestGateway;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Unusual text');
});
afterAll(async () => {
  await gateway?.close();
});

const ECHO = `module.exports = async (req) => {
  if (req.args.fail) throw new Error('failed at ' + req.args.fail);
  return { raw: { echoed: req.args, made: String.fromCharCode(0) + '\\ud83d' } };
};`;

async function finished(reactorId: string, requestId: string) {
  return until(`request ${requestId} finished`, async () => {
    const row = (await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey)).data
      ?.reactorResult;
    return row?.status === 'COMPLETED' || row?.status === 'FAILED' ? row : undefined;
  });
}

describe('text that only JSON can carry', () => {
  const args = { [NUL]: LONE_HIGH, list: [LONE_LOW, NUL] };

  it('reaches the formula and comes back exactly from react', async () => {
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, ECHO);
    const result = await gateway.gql<any>(REACT, { id: reactorId, args }, tenant.privateKey);
    expect(result.data?.react).toMatchObject({
      __typename: 'ReactorResponse',
      raw: { echoed: args, made: '\u0000\ud83d' },
    });
  });

  it('is stored and read back exactly for reactAsync: args, result and error', async () => {
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, ECHO);
    const completed = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args }, tenant.privateKey);
    const completedId = completed.data?.reactAsync?.asyncReactorRequestId;
    expect(completedId, JSON.stringify(completed)).toBeTypeOf('string');
    expect(await finished(reactorId, completedId)).toMatchObject({
      status: 'COMPLETED',
      raw: { echoed: args, made: '\u0000\ud83d' },
    });

    const failed = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args: { fail: NUL } }, tenant.privateKey);
    const failedId = failed.data?.reactAsync?.asyncReactorRequestId;
    expect(await finished(reactorId, failedId)).toMatchObject({
      status: 'FAILED',
      error: { code: 'REACTOR_RUNTIME_ERROR', message: `failed at ${NUL}` },
    });
    expect((await storedRequest(gateway.app.database.db, completedId))?.args).toEqual(args);
  });
});

describe('text for a text or jsonb column', () => {
  const FORMULA = `mutation($input: CreateReactorFormulaInput!) { createReactorFormula(input: $input) {
    __typename ... on Error { code status errors } } }`;

  it.each([
    ['a NUL in the name', { name: NUL }, 'name'],
    ['a lone surrogate in the name', { name: LONE_HIGH }, 'name'],
    ['a NUL in the description', { description: NUL }, 'description'],
    ['a NUL in the code', { code: `module.exports = async () => ({ raw: '${'\u0000'}' });` }, 'code'],
    [
      'a NUL in a configuration option name',
      { configuration: [{ name: NUL, type: 'STRING' }] },
      'configuration[0].name',
    ],
    [
      'a lone surrogate in a request parameter description',
      { requestParameters: [{ name: 'n', type: 'STRING', description: LONE_LOW }] },
      'requestParameters[0].description',
    ],
  ])('refuses a formula with %s', async (_case, change, field) => {
    const input = {
      name: 'Formula',
      type: 'PRIVATE',
      code: 'module.exports = async () => ({ raw: 1 });',
      configuration: [],
      requestParameters: [],
      ...change,
    };
    const result = await gateway.gql<any>(FORMULA, { input }, tenant.managementKey);
    expect(result.data?.createReactorFormula).toEqual({
      __typename: 'BadRequestError',
      code: 'BAD_REQUEST',
      status: 400,
      errors: { [field]: [UNSTORABLE_TEXT] },
    });
  });

  it('refuses such a reactor name or configuration value', async () => {
    const formulaId = await createFormula(gateway, tenant.managementKey, {
      code: 'module.exports = async () => ({ raw: 1 });',
      configuration: [{ name: 'key', type: 'STRING' }],
    });
    const result = await gateway.gql<any>(
      `mutation($input: CreateReactorInput!) { createReactor(input: $input) { __typename ... on Error { code errors } } }`,
      { input: { name: LONE_HIGH, formulaId, configuration: { key: NUL } } },
      tenant.managementKey,
    );
    expect(result.data?.createReactor).toEqual({
      __typename: 'BadRequestError',
      code: 'BAD_REQUEST',
      errors: { name: [UNSTORABLE_TEXT], 'configuration.key': [UNSTORABLE_TEXT] },
    });
  });

  it('refuses such token metadata, but seals such token data', async () => {
    const CREATE = `mutation($input: CreateTokenInput!) { createToken(input: $input) {
      __typename ... on Token { id } ... on Error { code errors } } }`;
    const refused = await gateway.gql<any>(
      CREATE,
      { input: { type: 'TOKEN', data: 'secret', metadata: { note: NUL } } },
      tenant.privateKey,
    );
    expect(refused.data?.createToken).toEqual({
      __typename: 'BadRequestError',
      code: 'BAD_REQUEST',
      errors: { 'metadata.note': [UNSTORABLE_TEXT] },
    });
    const sealed = await gateway.gql<any>(
      CREATE,
      { input: { type: 'TOKEN', data: { [NUL]: LONE_HIGH } } },
      tenant.privateKey,
    );
    const id = sealed.data?.createToken?.id;
    expect(id, JSON.stringify(sealed)).toBeTypeOf('string');
    const read = await gateway.gql<any>(`query($id: UUID!) { token(id: $id) { data } }`, { id }, tenant.privateKey);
    expect(read.data?.token?.data).toEqual({ [NUL]: LONE_HIGH });
  });

  it('refuses such a tenant or application name, callback URL or name search', async () => {
    const tenantResult = await gateway.gql<any>(
      `mutation($name: String!) { createTenant(input: { name: $name }) { __typename ... on Error { errors } } }`,
      { name: NUL },
      ADMIN_KEY,
    );
    expect(tenantResult.data?.createTenant).toEqual({
      __typename: 'BadRequestError',
      errors: { name: [UNSTORABLE_TEXT] },
    });

    const application = await gateway.gql<any>(
      `mutation($name: String!) { createApplication(input: { name: $name, type: PRIVATE }) {
        __typename ... on Error { errors } } }`,
      { name: LONE_LOW },
      tenant.managementKey,
    );
    expect(application.data?.createApplication).toEqual({
      __typename: 'BadRequestError',
      errors: { name: [UNSTORABLE_TEXT] },
    });

    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, ECHO);
    const queued = await gateway.gql<any>(
      REACT_ASYNC,
      { id: reactorId, args: {}, callbackUrl: `https://example.com/${NUL}` },
      tenant.privateKey,
    );
    expect(queued.data?.reactAsync).toMatchObject({ code: 'BAD_REQUEST', errors: { callbackUrl: [UNSTORABLE_TEXT] } });

    for (const list of ['reactors', 'reactorFormulas']) {
      const search = await gateway.gql<any>(
        `query($name: String) { ${list}(name: $name) { totalCount } }`,
        { name: NUL },
        tenant.managementKey,
      );
      expect(search.errors?.[0]?.extensions, list).toMatchObject({
        code: 'BAD_REQUEST',
        errors: { name: [UNSTORABLE_TEXT] },
      });
    }
  });
});

describe('a variable of the wrong type', () => {
  it('is BAD_REQUEST naming the variable, not an unexpected error', async () => {
    const result = await gateway.gql<any>(
      `query($id: UUID!) { reactor(id: $id) { id } }`,
      { id: 'nope' },
      tenant.privateKey,
    );
    expect(result).toEqual({
      errors: [
        {
          message: 'Variable "$id" got invalid value "nope"; Value is not a valid UUID: nope',
          locations: [{ line: 1, column: 7 }],
          extensions: { code: 'BAD_REQUEST', status: 400 },
        },
      ],
    });
  });
});
