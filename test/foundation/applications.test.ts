import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { errorCode, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

// Changing an application after it was created: updateApplication (PUT) and regenerateApplicationKey.
let gateway: TestGateway;
let server: RunningServer;
beforeAll(async () => {
  gateway = await startTestGateway();
  // req.bt talks to the gateway over HTTP, as an outside client would.
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

const APPLICATION_FIELDS = 'id name type permissions tokenContainers keyPrefix createdAt modifiedBy modifiedAt';
const ERROR_FIELDS = '... on Error { code status message } ... on BadRequestError { errors }';
const CREATE = `mutation($input: CreateApplicationInput!) { createApplication(input: $input) {
  __typename ... on CreateApplicationPayload { key application { ${APPLICATION_FIELDS} } } ${ERROR_FIELDS} } }`;
const UPDATE = `mutation($id: UUID!, $input: UpdateApplicationInput!) { updateApplication(id: $id, input: $input) {
  __typename ... on Application { ${APPLICATION_FIELDS} } ${ERROR_FIELDS} } }`;
const REGENERATE = `mutation($id: UUID!) { regenerateApplicationKey(id: $id) {
  __typename ... on RegenerateApplicationKeyPayload { key application { ${APPLICATION_FIELDS} } }
  ... on Error { code status message } } }`;
const READ = `query($id: UUID!) { application(id: $id) { ${APPLICATION_FIELDS} } }`;
const VIEWER = '{ viewer { application { id permissions tokenContainers } } }';
const UNKNOWN_ID = '01a204cc-a83d-77b0-9658-e28eab878300';

async function createApplication(tenant: TestTenant, input: Record<string, unknown>) {
  const result = await gateway.gql<any>(CREATE, { input }, tenant.managementKey);
  const payload = result.data?.createApplication;
  if (payload?.__typename !== 'CreateApplicationPayload') throw new Error(JSON.stringify(result));
  return payload as { key: string; application: Record<string, any> & { id: string } };
}

describe('updateApplication', () => {
  it('replaces name, permissions and token containers; the key keeps working with the new permissions at once', async () => {
    const tenant = await gateway.createTenant();
    const { key, application } = await createApplication(tenant, { name: 'Backend', type: 'PRIVATE' });
    expect((await gateway.gql<any>(VIEWER, {}, key)).data?.viewer.application.permissions).toContain('token:read');

    const result = await gateway.gql<any>(
      UPDATE,
      {
        id: application.id,
        input: { name: ' Card reader ', permissions: ['token:use', 'reactor:invoke'], tokenContainers: ['/pci/'] },
      },
      tenant.managementKey,
    );
    const updated = result.data?.updateApplication;
    const manager = (await gateway.gql<any>(VIEWER, {}, tenant.managementKey)).data?.viewer.application.id;
    expect([application.modifiedBy, application.modifiedAt]).toEqual([null, null]);
    expect(updated).toEqual({
      ...application,
      __typename: 'Application',
      name: 'Card reader',
      permissions: ['token:use', 'reactor:invoke'],
      tokenContainers: ['/pci/'],
      modifiedBy: manager,
      modifiedAt: expect.any(String),
    });
    expect(Date.parse(updated.modifiedAt)).toBeGreaterThanOrEqual(Date.parse(application.createdAt));
    expect((await gateway.gql<any>(READ, { id: application.id }, tenant.managementKey)).data?.application).toEqual(
      (({ __typename, ...fields }) => fields)(updated),
    );
    // The key was cached by the viewer query above: the change reaches it without waiting for the cache.
    expect((await gateway.gql<any>(VIEWER, {}, key)).data?.viewer.application).toEqual({
      id: application.id,
      permissions: ['token:use', 'reactor:invoke'],
      tokenContainers: ['/pci/'],
    });
    const read = await gateway.gql('query($id: UUID!) { token(id: $id) { id } }', { id: UNKNOWN_ID }, key);
    expect(errorCode(read)).toBe('FORBIDDEN');
  });

  it('is a PUT: token containers left out cover every container again', async () => {
    const tenant = await gateway.createTenant();
    const { application } = await createApplication(tenant, {
      name: 'Scoped',
      type: 'PRIVATE',
      permissions: ['token:use'],
      tokenContainers: ['/pci/'],
    });
    const result = await gateway.gql<any>(
      UPDATE,
      { id: application.id, input: { name: 'Scoped', permissions: ['token:use'] } },
      tenant.managementKey,
    );
    expect(result.data?.updateApplication.tokenContainers).toBeNull();
  });

  it('refuses what createApplication refuses, naming the field, and changes nothing', async () => {
    const tenant = await gateway.createTenant();
    const { application } = await createApplication(tenant, { name: 'Browser', type: 'PUBLIC' });
    const cases: [Record<string, unknown>, string][] = [
      [{ name: 'Browser', permissions: ['token:create', 'token:read'] }, 'permissions'],
      [{ name: 'Browser', permissions: ['nope'] }, 'permissions'],
      [{ name: '   ', permissions: ['token:create'] }, 'name'],
      [{ name: 'x'.repeat(201), permissions: ['token:create'] }, 'name'],
      [{ name: 'Browser', permissions: ['token:create'], tokenContainers: [] }, 'tokenContainers'],
      [{ name: 'Browser', permissions: ['token:create'], tokenContainers: ['pci'] }, 'tokenContainers'],
    ];
    for (const [input, field] of cases) {
      const result = await gateway.gql<any>(UPDATE, { id: application.id, input }, tenant.managementKey);
      expect(result.data?.updateApplication, JSON.stringify(input)).toMatchObject({
        __typename: 'BadRequestError',
        code: 'BAD_REQUEST',
        status: 400,
      });
      expect(Object.keys(result.data?.updateApplication.errors)).toEqual([field]);
    }
    const read = await gateway.gql<any>(READ, { id: application.id }, tenant.managementKey);
    expect(read.data?.application).toEqual(application);
  });

  it('is NOT_FOUND for an unknown id and for another tenant’s application, which it leaves alone', async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const { application } = await createApplication(theirs, { name: 'Theirs', type: 'PRIVATE' });
    const input = { name: 'Taken', permissions: ['token:read'] };
    const foreign = await gateway.gql<any>(UPDATE, { id: application.id, input }, mine.managementKey);
    const unknown = await gateway.gql<any>(UPDATE, { id: UNKNOWN_ID, input }, mine.managementKey);
    expect(foreign).toEqual(unknown);
    expect(unknown.data?.updateApplication).toMatchObject({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
      status: 404,
    });
    expect((await gateway.gql<any>(READ, { id: application.id }, theirs.managementKey)).data?.application).toEqual(
      application,
    );
  });

  it('needs application:update', async () => {
    const tenant = await gateway.createTenant();
    const { key } = await createApplication(tenant, {
      name: 'Reader',
      type: 'MANAGEMENT',
      permissions: ['application:read', 'application:create'],
    });
    const { application } = await createApplication(tenant, { name: 'Other', type: 'PRIVATE' });
    const update = await gateway.gql(UPDATE, { id: application.id, input: { name: 'x', permissions: [] } }, key);
    expect(errorCode(update)).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql(REGENERATE, { id: application.id }, key))).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql(REGENERATE, { id: application.id }, tenant.privateKey))).toBe('FORBIDDEN');
  });
});

describe('regenerateApplicationKey', () => {
  it('returns a new key that works, and the old key stops working at once', async () => {
    const tenant = await gateway.createTenant();
    const { key: oldKey, application } = await createApplication(tenant, { name: 'Backend', type: 'PRIVATE' });
    expect((await gateway.gql<any>(VIEWER, {}, oldKey)).data?.viewer.application.id).toBe(application.id);

    const result = await gateway.gql<any>(REGENERATE, { id: application.id }, tenant.managementKey);
    const { key: newKey, application: after } = result.data!.regenerateApplicationKey;
    expect(newKey).toMatch(/^key_[A-Za-z0-9_-]{43}$/);
    expect(newKey).not.toBe(oldKey);
    expect(after).toEqual({
      ...application,
      keyPrefix: newKey.slice(0, 10),
      modifiedBy: (await gateway.gql<any>(VIEWER, {}, tenant.managementKey)).data?.viewer.application.id,
      modifiedAt: expect.any(String),
    });

    expect(errorCode(await gateway.gql(VIEWER, {}, oldKey))).toBe('UNAUTHENTICATED');
    expect((await gateway.gql<any>(VIEWER, {}, newKey)).data?.viewer.application.id).toBe(application.id);
  });

  it('keeps the reactors that run as the application: req.bt works after the key changed', async () => {
    const tenant = await gateway.createTenant();
    const { key, application } = await createApplication(tenant, { name: 'Bound', type: 'PRIVATE' });
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      `module.exports = async (req) => {
        const token = await req.bt.tokens.create({ type: 'TOKEN', data: 'from-formula' });
        return { raw: { id: token.id } };
      };`,
      { applicationId: application.id },
    );
    const react = async (withKey: string) =>
      (await gateway.gql<any>(REACT, { id: reactorId, args: {} }, withKey)).data?.react;
    expect((await react(key)).raw.id).toEqual(expect.any(String));

    const regenerated = await gateway.gql<any>(REGENERATE, { id: application.id }, tenant.managementKey);
    const newKey = regenerated.data?.regenerateApplicationKey.key;
    const reactor = await gateway.gql<any>(
      'query($id: UUID!) { reactor(id: $id) { application { id } } }',
      { id: reactorId },
      tenant.managementKey,
    );
    expect(reactor.data?.reactor.application).toEqual({ id: application.id });
    const { raw } = await react(newKey);
    const made = await gateway.gql<any>('query($id: UUID!) { token(id: $id) { data } }', { id: raw.id }, newKey);
    expect(made.data?.token.data).toBe('from-formula');
  });

  it('may replace the key of the calling application itself', async () => {
    const tenant = await gateway.createTenant();
    const self = (await gateway.gql<any>(VIEWER, {}, tenant.managementKey)).data?.viewer.application.id;
    const result = await gateway.gql<any>(REGENERATE, { id: self }, tenant.managementKey);
    const newKey = result.data?.regenerateApplicationKey.key;
    expect(errorCode(await gateway.gql(VIEWER, {}, tenant.managementKey))).toBe('UNAUTHENTICATED');
    expect((await gateway.gql<any>(VIEWER, {}, newKey)).data?.viewer.application.id).toBe(self);
  });

  it('is NOT_FOUND for an unknown id and for another tenant’s application, whose key keeps working', async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const { key, application } = await createApplication(theirs, { name: 'Theirs', type: 'PRIVATE' });
    const foreign = await gateway.gql<any>(REGENERATE, { id: application.id }, mine.managementKey);
    const unknown = await gateway.gql<any>(REGENERATE, { id: UNKNOWN_ID }, mine.managementKey);
    expect(foreign).toEqual(unknown);
    expect(unknown.data?.regenerateApplicationKey).toMatchObject({ __typename: 'NotFoundError', status: 404 });
    expect((await gateway.gql<any>(VIEWER, {}, key)).data?.viewer.application.id).toBe(application.id);
  });
});

// A key may hand out only the management permissions it holds itself: otherwise application:update alone would
// grant itself everything, or take over the bootstrap key by replacing it.
describe('no key hands out management permissions it does not hold', () => {
  const COUNT = '{ applications { totalCount } }';
  const UPDATE_AS = async (key: string, id: string, permissions: string[]) =>
    gateway.gql<any>(UPDATE, { id, input: { name: 'Limited', permissions } }, key);
  const DELETE_AS = async (key: string, id: string) =>
    gateway.gql<any>(
      'mutation($id: UUID!) { deleteApplication(id: $id) { __typename ... on Error { code message } } }',
      { id },
      key,
    );
  /** The tenant's first management application (the bootstrap one), as its own key sees it. */
  const administratorOf = async (tenant: TestTenant) =>
    (await gateway.gql<any>(VIEWER, {}, tenant.managementKey)).data?.viewer.application;

  it('updateApplication: a MANAGEMENT application gets only what the caller holds; PRIVATE ones anything', async () => {
    const tenant = await gateway.createTenant();
    const { key, application } = await createApplication(tenant, {
      name: 'Limited',
      type: 'MANAGEMENT',
      permissions: ['application:update', 'application:read'],
    });
    const grant = await UPDATE_AS(key, application.id, ['application:update', 'reactor:delete', 'reactor:create']);
    expect(grant.data?.updateApplication).toEqual({
      __typename: 'ForbiddenError',
      code: 'FORBIDDEN',
      status: 403,
      message:
        'A MANAGEMENT application may be given only permissions the calling key holds; it lacks reactor:delete, ' +
        'reactor:create.',
    });
    expect((await gateway.gql<any>(VIEWER, {}, key)).data?.viewer.application.permissions).toEqual([
      'application:update',
      'application:read',
    ]);

    // Dropping a permission it holds is no escalation; a PRIVATE application may be given token permissions.
    const dropped = await UPDATE_AS(key, application.id, ['application:update']);
    expect(dropped.data?.updateApplication.permissions).toEqual(['application:update']);
    const { application: backend } = await createApplication(tenant, {
      name: 'Backend',
      type: 'PRIVATE',
      permissions: ['token:use'],
    });
    const granted = await UPDATE_AS(key, backend.id, ['token:read', 'token:use']);
    expect(granted.data?.updateApplication.permissions).toEqual(['token:read', 'token:use']);
  });

  it('createApplication: a MANAGEMENT application with more than the caller holds is refused, and not created', async () => {
    const tenant = await gateway.createTenant();
    const { key } = await createApplication(tenant, {
      name: 'Creator',
      type: 'MANAGEMENT',
      permissions: ['application:create', 'reactor:read'],
    });
    const before = (await gateway.gql<any>(COUNT, {}, tenant.managementKey)).data?.applications.totalCount;
    const explicit = await gateway.gql<any>(
      CREATE,
      { input: { name: 'Bigger', type: 'MANAGEMENT', permissions: ['reactor:read', 'reactor:delete'] } },
      key,
    );
    expect(explicit.data?.createApplication).toMatchObject({ __typename: 'ForbiddenError', status: 403 });
    expect(explicit.data?.createApplication.message).toMatch(/it lacks reactor:delete\.$/);
    // Left out, the permissions default to every management permission: refused the same way.
    const defaulted = await gateway.gql<any>(CREATE, { input: { name: 'Default', type: 'MANAGEMENT' } }, key);
    expect(defaulted.data?.createApplication.__typename).toBe('ForbiddenError');
    expect((await gateway.gql<any>(COUNT, {}, tenant.managementKey)).data?.applications.totalCount).toBe(before);

    const same = await gateway.gql<any>(
      CREATE,
      { input: { name: 'Peer', type: 'MANAGEMENT', permissions: ['reactor:read'] } },
      key,
    );
    expect(same.data?.createApplication.application.permissions).toEqual(['reactor:read']);
    const backend = await gateway.gql<any>(CREATE, { input: { name: 'Backend', type: 'PRIVATE' } }, key);
    expect(backend.data?.createApplication.__typename).toBe('CreateApplicationPayload');
  });

  it('a MANAGEMENT application holding more than the caller is neither updated nor deleted by it', async () => {
    const tenant = await gateway.createTenant();
    const { key, application } = await createApplication(tenant, {
      name: 'Weaker',
      type: 'MANAGEMENT',
      permissions: ['application:update', 'application:delete', 'application:read'],
    });
    const bootstrap = await administratorOf(tenant);
    const lacks =
      'requires the calling key to hold all of its permissions; it lacks reactor:create, reactor:read, ' +
      'reactor:update, reactor:delete, reactor:invoke, application:create.';
    // Stripping the administrator down to what the weaker key holds, or deleting it, is refused.
    const strip = await UPDATE_AS(key, bootstrap.id, ['application:read']);
    expect(strip.data?.updateApplication).toMatchObject({
      __typename: 'ForbiddenError',
      message: `Changing or deleting a MANAGEMENT application ${lacks}`,
    });
    const removed = await DELETE_AS(key, bootstrap.id);
    expect(removed.data?.deleteApplication).toEqual({
      __typename: 'ForbiddenError',
      code: 'FORBIDDEN',
      message: `Changing or deleting a MANAGEMENT application ${lacks}`,
    });
    expect(await administratorOf(tenant)).toEqual(bootstrap);
    // The stronger key may change and delete the weaker one.
    expect(
      (await UPDATE_AS(tenant.managementKey, application.id, ['application:read'])).data?.updateApplication,
    ).toMatchObject({ permissions: ['application:read'] });
    expect((await DELETE_AS(tenant.managementKey, application.id)).data?.deleteApplication.__typename).toBe(
      'Application',
    );
  });

  it('regenerateApplicationKey: the key of a MANAGEMENT application holding more than the caller is not replaced', async () => {
    const tenant = await gateway.createTenant();
    const { key, application } = await createApplication(tenant, {
      name: 'Rotator',
      type: 'MANAGEMENT',
      permissions: ['application:update', 'application:read'],
    });
    const bootstrap = (await administratorOf(tenant)).id;
    const takeover = await gateway.gql<any>(REGENERATE, { id: bootstrap }, key);
    expect(takeover.data?.regenerateApplicationKey).toMatchObject({ __typename: 'ForbiddenError', status: 403 });
    expect(takeover.data?.regenerateApplicationKey.message).toBe(
      'Replacing the key of a MANAGEMENT application requires the calling key to hold all of its permissions; it ' +
        'lacks reactor:create, reactor:read, reactor:update, reactor:delete, reactor:invoke, application:create, ' +
        'application:delete.',
    );
    expect((await administratorOf(tenant)).id).toBe(bootstrap);

    // Its own key, and a PRIVATE application's, it may replace.
    const own = await gateway.gql<any>(REGENERATE, { id: application.id }, key);
    const newKey = own.data?.regenerateApplicationKey.key;
    expect(newKey).toEqual(expect.any(String));
    const { application: backend } = await createApplication(tenant, { name: 'Backend', type: 'PRIVATE' });
    const replaced = await gateway.gql<any>(REGENERATE, { id: backend.id }, newKey);
    expect(replaced.data?.regenerateApplicationKey.key).toEqual(expect.any(String));
  });
});
