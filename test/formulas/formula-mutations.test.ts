import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OFFICIAL_FORMULA_IDS } from '../../src/formulas/official.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import {
  applicationIdOf,
  CREATE_FORMULA,
  createFormula,
  DELETE_FORMULA,
  formulaInput,
  GET_FORMULA,
  SEED_CODE,
  SEED_ICON,
  UNKNOWN_ID,
  UPDATE_FORMULA,
} from './helpers.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

async function create(key: string, overrides: Record<string, unknown> = {}) {
  return (await gateway.gql(CREATE_FORMULA, { input: formulaInput(overrides) }, key)).data?.createReactorFormula;
}

describe('createReactorFormula', () => {
  it('creates the seed example as a private formula and returns every field', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    expect(formula).toMatchObject({
      name: 'My Private Reactor',
      description: 'Securely exchange token for another token',
      type: 'PRIVATE',
      formulaStatus: 'VERIFIED',
      icon: SEED_ICON,
      formulaCode: SEED_CODE,
      configuration: [{ name: 'SERVICE_API_KEY', description: 'Configuration description', type: 'STRING' }],
      requestParameters: [
        { name: 'request_parameter_1', description: 'Request parameter description', type: 'STRING', optional: false },
        { name: 'request_parameter_2', description: 'Request parameter description', type: 'BOOLEAN', optional: true },
      ],
      createdBy: await applicationIdOf(gateway, tenant.managementKey),
      modifiedBy: null,
      modifiedAt: null,
    });
    expect(Date.parse(formula.createdAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('stores the sha256 of the code as its code hash', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    const row = await gateway.app.database.db
      .selectFrom('reactor_formulas')
      .select(['code_hash', 'tenant_id'])
      .where('id', '=', formula.id)
      .executeTakeFirstOrThrow();
    expect(row).toEqual({
      code_hash: createHash('sha256').update(SEED_CODE).digest('hex'),
      tenant_id: tenant.tenantId,
    });
  });

  it('defaults configuration and request parameters to none', async () => {
    const tenant = await gateway.createTenant();
    const input = formulaInput();
    delete input.configuration;
    delete input.requestParameters;
    const result = await gateway.gql(CREATE_FORMULA, { input }, tenant.managementKey);
    expect(result.data?.createReactorFormula).toMatchObject({ configuration: [], requestParameters: [] });
  });

  it('accepts a formula name of 200 characters', async () => {
    const tenant = await gateway.createTenant();
    expect(await create(tenant.managementKey, { name: 'n'.repeat(200) })).toMatchObject({
      __typename: 'ReactorFormula',
    });
  });

  it('rejects a formula name of 201 characters', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, { name: 'n'.repeat(201) });
    expect(result).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST', status: 400 });
    expect(result.errors).toEqual({ name: ['must be at most 200 characters'] });
  });

  it('rejects a blank formula name', async () => {
    const tenant = await gateway.createTenant();
    expect((await create(tenant.managementKey, { name: '   ' })).errors).toEqual({ name: ['is required'] });
  });

  it('rejects code over 50,000 characters', async () => {
    const tenant = await gateway.createTenant();
    const code = `module.exports = async () => ({});//${'x'.repeat(50_000)}`;
    expect((await create(tenant.managementKey, { code })).errors).toEqual({
      code: ['must be at most 50000 characters'],
    });
  });

  it('rejects an icon that is not a PNG or JPEG data URL', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, { icon: 'data:image/gif;base64,R0lGODlhAQABAAAAACw=' });
    expect(result.__typename).toBe('BadRequestError');
    expect(Object.keys(result.errors)).toEqual(['icon']);
  });

  it('rejects duplicate and dotted configuration option names', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, {
      configuration: [
        { name: 'KEY', type: 'STRING' },
        { name: 'KEY', type: 'NUMBER' },
        { name: 'A.B', type: 'STRING' },
      ],
    });
    expect(result.errors).toEqual({
      'configuration[1].name': ['duplicates configuration[0].name'],
      'configuration[2].name': ['must not contain a dot'],
    });
  });

  it('rejects a request parameter that is both a value and the parent of another', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, {
      requestParameters: [
        { name: 'user', type: 'STRING' },
        { name: 'user.name', type: 'STRING' },
      ],
    });
    expect(Object.keys(result.errors)).toEqual(['requestParameters[0].name']);
  });

  it('lists every offending field in one BAD_REQUEST', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, { name: '', code: ' ', icon: 'nope' });
    expect(Object.keys(result.errors).sort()).toEqual(['code', 'icon', 'name']);
  });

  it('rejects code that does not compile as INVALID_REACTOR_CODE (422)', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, { code: 'module.exports = async function (req) { return {' });
    expect(result).toMatchObject({ __typename: 'InvalidReactorCodeError', code: 'INVALID_REACTOR_CODE', status: 422 });
  });

  it('rejects code whose module.exports is not a function as INVALID_REACTOR_CODE', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, { code: 'module.exports = { raw: 1 };' });
    expect(result).toMatchObject({ __typename: 'InvalidReactorCodeError', code: 'INVALID_REACTOR_CODE' });
  });

  it('checks the code in the sandbox, never on the main thread', async () => {
    const tenant = await gateway.createTenant();
    const code = 'globalThis.__formulaRanHere = true; module.exports = async () => ({ raw: 1 });';
    expect(await create(tenant.managementKey, { code })).toMatchObject({ __typename: 'ReactorFormula' });
    expect((globalThis as Record<string, unknown>).__formulaRanHere).toBeUndefined();
    const hostCall = await create(tenant.managementKey, { code: 'process.exit(1); module.exports = () => ({});' });
    expect(hostCall.code).toBe('INVALID_REACTOR_CODE');
  });

  it('answers SERVICE_UNAVAILABLE (503), saving nothing, when the sandbox could not check the code', async () => {
    const tenant = await gateway.createTenant();
    // What the pool answers when no worker took the check within its backstop (runtime/pool.ts), or a worker could
    // not make an isolate: the gateway's trouble, not the code's, so not a 422 that would tell the client to fix it.
    const runtime = gateway.app.services.runtime;
    const checkCode = runtime.checkCode;
    runtime.checkCode = async () => ({
      ok: false,
      message: 'Reactor code could not be checked in time',
      reason: 'unavailable',
    });
    try {
      const response = await gateway.gql(CREATE_FORMULA, { input: formulaInput() }, tenant.managementKey);
      expect(response.data?.createReactorFormula ?? null).toBeNull();
      expect(response.errors?.[0]).toMatchObject({
        message: 'Reactor code could not be checked in time; nothing was saved, try again.',
        extensions: { code: 'SERVICE_UNAVAILABLE', status: 503 },
      });
    } finally {
      runtime.checkCode = checkCode;
    }
    const listed = await gateway.gql(
      'query { reactorFormulas(first: 50) { edges { node { type } } } }',
      {},
      tenant.managementKey,
    );
    expect(listed.data?.reactorFormulas.edges.filter((e: any) => e.node.type === 'PRIVATE')).toEqual([]);
  });

  it('refuses an OFFICIAL formula from a tenant as FORBIDDEN', async () => {
    const tenant = await gateway.createTenant();
    const result = await create(tenant.managementKey, { type: 'OFFICIAL' });
    expect(result).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN', status: 403 });
  });

  it('requires reactor:create (a private key gets a FORBIDDEN GraphQL error)', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(CREATE_FORMULA, { input: formulaInput() }, tenant.privateKey);
    expect(errorCode(result)).toBe('FORBIDDEN');
    expect(result.data?.createReactorFormula ?? null).toBeNull();
  });
});

describe('updateReactorFormula', () => {
  it('replaces every field and records who modified it and when', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    const input = { name: 'Renamed', type: 'PRIVATE', code: 'module.exports = async (req) => ({ raw: req.args });' };
    const result = await gateway.gql(UPDATE_FORMULA, { id: formula.id, input }, tenant.managementKey);
    const updated = result.data?.updateReactorFormula;
    expect(updated).toMatchObject({
      __typename: 'ReactorFormula',
      id: formula.id,
      name: 'Renamed',
      description: null,
      icon: null,
      formulaCode: input.code,
      configuration: [],
      requestParameters: [],
      createdAt: formula.createdAt,
      createdBy: formula.createdBy,
      modifiedBy: formula.createdBy,
    });
    expect(Date.parse(updated.modifiedAt)).toBeGreaterThanOrEqual(Date.parse(formula.createdAt));
    const row = await gateway.app.database.db
      .selectFrom('reactor_formulas')
      .select('code_hash')
      .where('id', '=', formula.id)
      .executeTakeFirstOrThrow();
    expect(row.code_hash).toBe(createHash('sha256').update(input.code).digest('hex'));
  });

  it('validates like create and leaves the formula unchanged when it refuses', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    const bad = await gateway.gql(
      UPDATE_FORMULA,
      { id: formula.id, input: formulaInput({ name: 'x'.repeat(201) }) },
      tenant.managementKey,
    );
    expect(bad.data?.updateReactorFormula.errors).toEqual({ name: ['must be at most 200 characters'] });
    const badCode = await gateway.gql(
      UPDATE_FORMULA,
      { id: formula.id, input: formulaInput({ code: 'module.exports = 42;' }) },
      tenant.managementKey,
    );
    expect(badCode.data?.updateReactorFormula.code).toBe('INVALID_REACTOR_CODE');
    const official = await gateway.gql(
      UPDATE_FORMULA,
      { id: formula.id, input: formulaInput({ type: 'OFFICIAL' }) },
      tenant.managementKey,
    );
    expect(official.data?.updateReactorFormula.code).toBe('FORBIDDEN');
    const read = await gateway.gql(GET_FORMULA, { id: formula.id }, tenant.managementKey);
    expect(read.data?.reactorFormula).toEqual(
      Object.fromEntries(Object.entries(formula).filter(([k]) => k !== '__typename')),
    );
  });

  it('refuses to change an official formula: FORBIDDEN', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(
      UPDATE_FORMULA,
      { id: OFFICIAL_FORMULA_IDS.echo, input: formulaInput() },
      tenant.managementKey,
    );
    expect(result.data?.updateReactorFormula).toMatchObject({ __typename: 'ForbiddenError', status: 403 });
  });

  it("answers another tenant's formula id exactly like an unknown id (NOT_FOUND)", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const their = await createFormula(gateway, theirs.managementKey);
    const variables = { input: formulaInput({ name: 'Hijacked' }) };
    const forTheirs = await gateway.gql(UPDATE_FORMULA, { ...variables, id: their.id }, mine.managementKey);
    const forUnknown = await gateway.gql(UPDATE_FORMULA, { ...variables, id: UNKNOWN_ID }, mine.managementKey);
    expect(forTheirs).toEqual(forUnknown);
    expect(forTheirs.data?.updateReactorFormula).toMatchObject({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
      status: 404,
    });
    expect((await gateway.gql(GET_FORMULA, { id: their.id }, theirs.managementKey)).data?.reactorFormula.name).toBe(
      their.name,
    );
  });

  it('requires reactor:update', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    const result = await gateway.gql(UPDATE_FORMULA, { id: formula.id, input: formulaInput() }, tenant.privateKey);
    expect(errorCode(result)).toBe('FORBIDDEN');
  });
});

const CREATE_REACTOR = `mutation($input: CreateReactorInput!) { createReactor(input: $input) {
  __typename ... on Reactor { id } ... on Error { code errors } } }`;

describe('deleteReactorFormula', () => {
  it('deletes a private formula, which then reads as null', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    const result = await gateway.gql(DELETE_FORMULA, { id: formula.id }, tenant.managementKey);
    expect(result.data?.deleteReactorFormula).toEqual({ __typename: 'ReactorFormula', id: formula.id });
    expect((await gateway.gql(GET_FORMULA, { id: formula.id }, tenant.managementKey)).data?.reactorFormula).toBeNull();
    const again = await gateway.gql(DELETE_FORMULA, { id: formula.id }, tenant.managementKey);
    expect(again.data?.deleteReactorFormula.code).toBe('NOT_FOUND');
  });

  it('refuses to delete a formula that reactors use: CONFLICT (409) naming how many', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    for (const name of ['one', 'two']) {
      const input = { name, formulaId: formula.id, configuration: { SERVICE_API_KEY: 'k' } };
      expect((await gateway.gql(CREATE_REACTOR, { input }, tenant.managementKey)).data?.createReactor.__typename).toBe(
        'Reactor',
      );
    }
    const result = await gateway.gql(DELETE_FORMULA, { id: formula.id }, tenant.managementKey);
    expect(result.data?.deleteReactorFormula).toMatchObject({
      __typename: 'ConflictError',
      code: 'CONFLICT',
      status: 409,
    });
    expect(result.data?.deleteReactorFormula.message).toContain('2 reactors');
    expect((await gateway.gql(GET_FORMULA, { id: formula.id }, tenant.managementKey)).data?.reactorFormula.id).toBe(
      formula.id,
    );
  });

  it('refuses to delete an official formula: FORBIDDEN', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(DELETE_FORMULA, { id: OFFICIAL_FORMULA_IDS.cardCheck }, tenant.managementKey);
    expect(result.data?.deleteReactorFormula).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    expect(
      (await gateway.gql(GET_FORMULA, { id: OFFICIAL_FORMULA_IDS.cardCheck }, tenant.managementKey)).data
        ?.reactorFormula.id,
    ).toBe(OFFICIAL_FORMULA_IDS.cardCheck);
  });

  it("answers another tenant's formula id exactly like an unknown id", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const their = await createFormula(gateway, theirs.managementKey);
    const forTheirs = await gateway.gql(DELETE_FORMULA, { id: their.id }, mine.managementKey);
    expect(forTheirs).toEqual(await gateway.gql(DELETE_FORMULA, { id: UNKNOWN_ID }, mine.managementKey));
    expect(forTheirs.data?.deleteReactorFormula.code).toBe('NOT_FOUND');
    expect((await gateway.gql(GET_FORMULA, { id: their.id }, theirs.managementKey)).data?.reactorFormula.id).toBe(
      their.id,
    );
  });

  it('requires reactor:delete', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey);
    expect(errorCode(await gateway.gql(DELETE_FORMULA, { id: formula.id }, tenant.privateKey))).toBe('FORBIDDEN');
  });
});
