import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OFFICIAL_FORMULA_IDS } from '../../src/formulas/official.ts';
import {
  applicationIdOf,
  createApplication,
  createFormula,
  formulaInput,
  UNKNOWN_ID,
  UPDATE_FORMULA,
} from '../formulas/helpers.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import {
  CREATE_REACTOR,
  createConfiguredFormula,
  createReactor,
  DELETE_REACTOR,
  GET_REACTOR,
  PATCH_REACTOR,
  UPDATE_REACTOR,
} from './helpers.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

const CONFIG = { API_KEY: 'key_abcd1234', LIMIT: 10, LIVE: false };

/** A tenant with a configured formula and a reactor of it. */
async function setUp() {
  const tenant = await gateway.createTenant();
  const formula = await createConfiguredFormula(gateway, tenant.managementKey);
  const reactor = await createReactor(gateway, tenant.managementKey, {
    name: 'My Reactor',
    formulaId: formula.id,
    configuration: CONFIG,
  });
  return { tenant, formula, reactor };
}

async function mutate(query: string, variables: Record<string, unknown>, key: string) {
  const result = await gateway.gql(query, variables, key);
  return Object.values(result.data ?? {})[0] as Record<string, any>;
}

describe('createReactor', () => {
  it('creates a reactor with its configuration cast to the declared types', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createConfiguredFormula(gateway, tenant.managementKey);
    const backend = await createApplication(gateway, tenant.managementKey, 'PRIVATE');
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: '  My Reactor ',
      formulaId: formula.id,
      configuration: { API_KEY: 1234, LIMIT: '10', LIVE: 'TRUE' },
      applicationId: backend.id,
    });
    expect(reactor).toMatchObject({
      tenantId: tenant.tenantId,
      name: 'My Reactor',
      configuration: { API_KEY: '1234', LIMIT: 10, LIVE: true },
      formula: { id: formula.id, name: formula.name },
      application: { id: backend.id, type: 'PRIVATE' },
      createdBy: await applicationIdOf(gateway, tenant.managementKey),
      modifiedBy: null,
      modifiedAt: null,
    });
  });

  it('creates a reactor of an official formula, without an application', async () => {
    const tenant = await gateway.createTenant();
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'Echo',
      formulaId: OFFICIAL_FORMULA_IDS.echo,
    });
    expect(reactor).toMatchObject({
      configuration: {},
      formula: { id: OFFICIAL_FORMULA_IDS.echo, name: 'Echo' },
      application: null,
    });
  });

  it('rejects a reactor name of 201 characters', async () => {
    const tenant = await gateway.createTenant();
    const input = { name: 'r'.repeat(201), formulaId: OFFICIAL_FORMULA_IDS.echo };
    const result = await mutate(CREATE_REACTOR, { input }, tenant.managementKey);
    expect(result).toMatchObject({
      __typename: 'BadRequestError',
      code: 'BAD_REQUEST',
      errors: { name: ['must be at most 200 characters'] },
    });
  });

  it('rejects a configuration that breaks the formula contract, naming each key', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createConfiguredFormula(gateway, tenant.managementKey);
    const input = { name: 'r', formulaId: formula.id, configuration: { API_KEY: 'k', LIMIT: 'ten', EXTRA: 1 } };
    const result = await mutate(CREATE_REACTOR, { input }, tenant.managementKey);
    expect(result.errors).toEqual({
      'configuration.LIMIT': ['must be a number, not a string that cannot be cast'],
      'configuration.LIVE': ['is required'],
      'configuration.EXTRA': ['is not a configuration option of the formula'],
    });
  });

  it("rejects an unknown formulaId, and another tenant's private formula the same way", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const their = await createFormula(gateway, theirs.managementKey);
    const forTheirs = await gateway.gql(
      CREATE_REACTOR,
      { input: { name: 'r', formulaId: their.id } },
      mine.managementKey,
    );
    const forUnknown = await gateway.gql(
      CREATE_REACTOR,
      { input: { name: 'r', formulaId: UNKNOWN_ID } },
      mine.managementKey,
    );
    expect(forTheirs).toEqual(forUnknown);
    expect(Object.keys(forTheirs.data?.createReactor.errors)).toEqual(['formulaId']);
  });

  it('rejects a MANAGEMENT application, naming applicationId', async () => {
    const tenant = await gateway.createTenant();
    const input = {
      name: 'r',
      formulaId: OFFICIAL_FORMULA_IDS.echo,
      applicationId: await applicationIdOf(gateway, tenant.managementKey),
    };
    const result = await mutate(CREATE_REACTOR, { input }, tenant.managementKey);
    expect(result.errors).toEqual({ applicationId: ['must be a PUBLIC or PRIVATE application, not a MANAGEMENT one'] });
  });

  it("rejects another tenant's application exactly like an unknown one", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const theirApp = await applicationIdOf(gateway, theirs.privateKey);
    const input = (applicationId: string) => ({
      input: { name: 'r', formulaId: OFFICIAL_FORMULA_IDS.echo, applicationId },
    });
    const forTheirs = await gateway.gql(CREATE_REACTOR, input(theirApp), mine.managementKey);
    expect(forTheirs).toEqual(await gateway.gql(CREATE_REACTOR, input(UNKNOWN_ID), mine.managementKey));
    expect(forTheirs.data?.createReactor.errors).toEqual({ applicationId: ['is not an application of this tenant'] });
  });

  it('accepts a PUBLIC application', async () => {
    const tenant = await gateway.createTenant();
    const browser = await createApplication(gateway, tenant.managementKey, 'PUBLIC');
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'r',
      formulaId: OFFICIAL_FORMULA_IDS.echo,
      applicationId: browser.id,
    });
    expect(reactor.application).toEqual({ id: browser.id, type: 'PUBLIC' });
  });

  it('requires reactor:create', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(
      CREATE_REACTOR,
      { input: { name: 'r', formulaId: OFFICIAL_FORMULA_IDS.echo } },
      tenant.privateKey,
    );
    expect(errorCode(result)).toBe('FORBIDDEN');
  });
});

describe('updateReactor', () => {
  it('replaces name, configuration and application, keeps the formula and records the change', async () => {
    const { tenant, formula, reactor } = await setUp();
    const backend = await createApplication(gateway, tenant.managementKey, 'PRIVATE');
    const input = {
      name: 'Renamed',
      configuration: { API_KEY: 'new', LIMIT: 20, LIVE: 'true' },
      applicationId: backend.id,
    };
    const updated = await mutate(UPDATE_REACTOR, { id: reactor.id, input }, tenant.managementKey);
    expect(updated).toMatchObject({
      __typename: 'Reactor',
      name: 'Renamed',
      configuration: { API_KEY: 'new', LIMIT: 20, LIVE: true },
      formula: { id: formula.id },
      application: { id: backend.id },
      createdAt: reactor.createdAt,
      modifiedBy: reactor.createdBy,
    });
    expect(Date.parse(updated.modifiedAt)).toBeGreaterThan(Date.parse(reactor.createdAt));
  });

  it('detaches the application when applicationId is absent (the whole object is replaced)', async () => {
    const tenant = await gateway.createTenant();
    const backend = await createApplication(gateway, tenant.managementKey, 'PRIVATE');
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'r',
      formulaId: OFFICIAL_FORMULA_IDS.echo,
      applicationId: backend.id,
    });
    const updated = await mutate(UPDATE_REACTOR, { id: reactor.id, input: { name: 'r' } }, tenant.managementKey);
    expect(updated.application).toBeNull();
  });

  it('validates the configuration against the formula and changes nothing when it refuses', async () => {
    const { tenant, reactor } = await setUp();
    const result = await mutate(
      UPDATE_REACTOR,
      { id: reactor.id, input: { name: '', configuration: { API_KEY: 'k' } } },
      tenant.managementKey,
    );
    expect(Object.keys(result.errors).sort()).toEqual(['configuration.LIMIT', 'configuration.LIVE', 'name']);
    expect((await gateway.gql(GET_REACTOR, { id: reactor.id }, tenant.managementKey)).data?.reactor).toEqual(
      Object.fromEntries(Object.entries(reactor).filter(([k]) => k !== '__typename')),
    );
  });

  it("answers another tenant's reactor id exactly like an unknown id (NOT_FOUND)", async () => {
    const { tenant: theirs, reactor } = await setUp();
    const mine = await gateway.createTenant();
    const input = { name: 'Hijacked', configuration: CONFIG };
    const forTheirs = await gateway.gql(UPDATE_REACTOR, { id: reactor.id, input }, mine.managementKey);
    expect(forTheirs).toEqual(await gateway.gql(UPDATE_REACTOR, { id: UNKNOWN_ID, input }, mine.managementKey));
    expect(forTheirs.data?.updateReactor).toMatchObject({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
      status: 404,
    });
    expect((await gateway.gql(GET_REACTOR, { id: reactor.id }, theirs.managementKey)).data?.reactor.name).toBe(
      'My Reactor',
    );
  });

  it('requires reactor:update', async () => {
    const { tenant, reactor } = await setUp();
    const result = await gateway.gql(
      UPDATE_REACTOR,
      { id: reactor.id, input: { name: 'x', configuration: CONFIG } },
      tenant.privateKey,
    );
    expect(errorCode(result)).toBe('FORBIDDEN');
  });
});

describe('patchReactor (RFC 7386 merge-patch)', () => {
  it('keeps every field the patch leaves out', async () => {
    const { tenant, reactor } = await setUp();
    const patched = await mutate(PATCH_REACTOR, { id: reactor.id, input: { name: 'Patched' } }, tenant.managementKey);
    expect(patched).toMatchObject({ name: 'Patched', configuration: CONFIG, application: reactor.application });
  });

  it('merges configuration key by key and validates the merged result', async () => {
    const { tenant, reactor } = await setUp();
    const patched = await mutate(
      PATCH_REACTOR,
      { id: reactor.id, input: { configuration: { LIMIT: '99' } } },
      tenant.managementKey,
    );
    expect(patched.configuration).toEqual({ ...CONFIG, LIMIT: 99 });
    const bad = await mutate(
      PATCH_REACTOR,
      { id: reactor.id, input: { configuration: { LIVE: 'maybe' } } },
      tenant.managementKey,
    );
    expect(bad.errors).toEqual({ 'configuration.LIVE': ['must be a boolean, not a string that cannot be cast'] });
  });

  it('removes a configuration key given as null (and refuses when the formula requires it)', async () => {
    const { tenant, formula, reactor } = await setUp();
    const required = await mutate(
      PATCH_REACTOR,
      { id: reactor.id, input: { configuration: { LIVE: null } } },
      tenant.managementKey,
    );
    expect(required.errors).toEqual({ 'configuration.LIVE': ['is required'] });
    // The formula drops LIVE: the reactor's stale LIVE key now fails validation until a patch removes it.
    const contract = [
      { name: 'API_KEY', type: 'STRING' },
      { name: 'LIMIT', type: 'NUMBER' },
    ];
    await gateway.gql(
      UPDATE_FORMULA,
      { id: formula.id, input: formulaInput({ configuration: contract }) },
      tenant.managementKey,
    );
    const stale = await mutate(PATCH_REACTOR, { id: reactor.id, input: { name: 'x' } }, tenant.managementKey);
    expect(stale.errors).toEqual({ 'configuration.LIVE': ['is not a configuration option of the formula'] });
    const cleaned = await mutate(
      PATCH_REACTOR,
      { id: reactor.id, input: { configuration: { LIVE: null } } },
      tenant.managementKey,
    );
    expect(cleaned.configuration).toEqual({ API_KEY: CONFIG.API_KEY, LIMIT: CONFIG.LIMIT });
  });

  it('empties the configuration when it is null', async () => {
    const tenant = await gateway.createTenant();
    const formula = await createFormula(gateway, tenant.managementKey, { configuration: [] });
    const reactor = await createReactor(gateway, tenant.managementKey, { name: 'r', formulaId: formula.id });
    expect(
      (await mutate(PATCH_REACTOR, { id: reactor.id, input: { configuration: null } }, tenant.managementKey))
        .configuration,
    ).toEqual({});
    const configured = await setUp();
    const refused = await mutate(
      PATCH_REACTOR,
      { id: configured.reactor.id, input: { configuration: null } },
      configured.tenant.managementKey,
    );
    expect(Object.keys(refused.errors).sort()).toEqual([
      'configuration.API_KEY',
      'configuration.LIMIT',
      'configuration.LIVE',
    ]);
  });

  it('detaches the application on applicationId: null and keeps it when absent', async () => {
    const tenant = await gateway.createTenant();
    const backend = await createApplication(gateway, tenant.managementKey, 'PRIVATE');
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'r',
      formulaId: OFFICIAL_FORMULA_IDS.echo,
      applicationId: backend.id,
    });
    expect(
      (await mutate(PATCH_REACTOR, { id: reactor.id, input: { name: 'kept' } }, tenant.managementKey)).application,
    ).toEqual({ id: backend.id, type: 'PRIVATE' });
    expect(
      (await mutate(PATCH_REACTOR, { id: reactor.id, input: { applicationId: null } }, tenant.managementKey))
        .application,
    ).toBeNull();
    const management = await applicationIdOf(gateway, tenant.managementKey);
    const refused = await mutate(
      PATCH_REACTOR,
      { id: reactor.id, input: { applicationId: management } },
      tenant.managementKey,
    );
    expect(Object.keys(refused.errors)).toEqual(['applicationId']);
  });

  it('refuses a null name: a reactor needs one', async () => {
    const { tenant, reactor } = await setUp();
    const result = await mutate(PATCH_REACTOR, { id: reactor.id, input: { name: null } }, tenant.managementKey);
    expect(result).toMatchObject({ __typename: 'BadRequestError', errors: { name: ['is required'] } });
  });

  it('moves modifiedAt forward on every patch, even within one millisecond', async () => {
    const { tenant, reactor } = await setUp();
    const stamps: number[] = [];
    for (let i = 0; i < 3; i++) {
      const patched = await mutate(PATCH_REACTOR, { id: reactor.id, input: { name: `n${i}` } }, tenant.managementKey);
      stamps.push(Date.parse(patched.modifiedAt));
    }
    expect(stamps[0]).toBeGreaterThan(Date.parse(reactor.createdAt));
    expect(stamps[1]).toBeGreaterThan(stamps[0] as number);
    expect(stamps[2]).toBeGreaterThan(stamps[1] as number);
  });

  it("answers another tenant's reactor id exactly like an unknown id", async () => {
    const { reactor } = await setUp();
    const mine = await gateway.createTenant();
    const forTheirs = await gateway.gql(PATCH_REACTOR, { id: reactor.id, input: { name: 'x' } }, mine.managementKey);
    expect(forTheirs).toEqual(
      await gateway.gql(PATCH_REACTOR, { id: UNKNOWN_ID, input: { name: 'x' } }, mine.managementKey),
    );
    expect(forTheirs.data?.patchReactor.code).toBe('NOT_FOUND');
  });
});

describe('deleteReactor', () => {
  it('deletes a reactor, which then reads as null', async () => {
    const { tenant, reactor } = await setUp();
    expect(await mutate(DELETE_REACTOR, { id: reactor.id }, tenant.managementKey)).toEqual({
      __typename: 'Reactor',
      id: reactor.id,
    });
    expect((await gateway.gql(GET_REACTOR, { id: reactor.id }, tenant.managementKey)).data?.reactor).toBeNull();
    expect((await mutate(DELETE_REACTOR, { id: reactor.id }, tenant.managementKey)).code).toBe('NOT_FOUND');
  });

  it("answers another tenant's reactor id exactly like an unknown id", async () => {
    const { tenant: theirs, reactor } = await setUp();
    const mine = await gateway.createTenant();
    const forTheirs = await gateway.gql(DELETE_REACTOR, { id: reactor.id }, mine.managementKey);
    expect(forTheirs).toEqual(await gateway.gql(DELETE_REACTOR, { id: UNKNOWN_ID }, mine.managementKey));
    expect((await gateway.gql(GET_REACTOR, { id: reactor.id }, theirs.managementKey)).data?.reactor.id).toBe(
      reactor.id,
    );
  });

  it('requires reactor:delete', async () => {
    const { tenant, reactor } = await setUp();
    expect(errorCode(await gateway.gql(DELETE_REACTOR, { id: reactor.id }, tenant.privateKey))).toBe('FORBIDDEN');
  });
});
