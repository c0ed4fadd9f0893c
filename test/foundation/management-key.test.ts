import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCreateManagementKey } from '../../src/auth/management-key-command.ts';
import { loadConfig } from '../../src/config.ts';
import { createLastingDatabase, type LastingDatabase } from '../support/database.ts';
import { ADMIN_KEY, errorCode, startTestGateway, type TestGateway, testEnvironment } from '../support/gateway.ts';

// The way back into a tenant that lost its management keys: the operator's createManagementKey, and the same from a
// shell (`npm run create-management-key`).
const VIEWER = '{ viewer { tenant { id } application { name type permissions } } }';
const DELETE_APPLICATION = 'mutation($id: UUID!) { deleteApplication(id: $id) { __typename } }';
const CREATE_MANAGEMENT_KEY = `mutation($tenantId: UUID!) { createManagementKey(tenantId: $tenantId) {
  __typename ... on CreateApplicationPayload { key application { id name type permissions createdBy } }
  ... on Error { code status message } } }`;
const EVERY_MANAGEMENT_PERMISSION = [
  'reactor:create',
  'reactor:read',
  'reactor:update',
  'reactor:delete',
  'reactor:invoke',
  'application:create',
  'application:read',
  'application:update',
  'application:delete',
];

let database: LastingDatabase;
let gateway: TestGateway;
beforeAll(async () => {
  database = await createLastingDatabase();
  gateway = await startTestGateway({ database, target: database.nextTarget() });
});
afterAll(async () => {
  await gateway?.close();
  await database?.drop();
});

/** A tenant whose only management application deleted itself: no key of it can manage anything any more. */
async function lockedOutTenant() {
  const tenant = await gateway.createTenant('Locked out');
  const self = (await gateway.gql<any>(VIEWER, {}, tenant.managementKey)).data?.viewer;
  const management = await gateway.gql<any>(
    '{ applications { edges { node { id type } } } }',
    {},
    tenant.managementKey,
  );
  const own = management.data?.applications.edges.find((edge: any) => edge.node.type === 'MANAGEMENT').node.id;
  expect(self.application.type).toBe('MANAGEMENT');
  await gateway.gql(DELETE_APPLICATION, { id: own }, tenant.managementKey);
  expect(errorCode(await gateway.gql(VIEWER, {}, tenant.managementKey))).toBe('UNAUTHENTICATED');
  return tenant;
}

describe('createManagementKey (operator only)', () => {
  it('gives a locked-out tenant a key holding every management permission', async () => {
    const tenant = await lockedOutTenant();
    const result = await gateway.gql<any>(CREATE_MANAGEMENT_KEY, { tenantId: tenant.tenantId }, ADMIN_KEY);
    const { key, application } = result.data!.createManagementKey;
    expect(application).toMatchObject({
      type: 'MANAGEMENT',
      name: expect.stringMatching(/^Recovery key \d{4}-\d{2}-\d{2}$/),
      permissions: EVERY_MANAGEMENT_PERMISSION,
      createdBy: null,
    });
    const viewer = (await gateway.gql<any>(VIEWER, {}, key)).data?.viewer;
    expect(viewer.tenant.id).toBe(tenant.tenantId);
    // It manages the tenant again: it may create the applications the tenant needs.
    const created = await gateway.gql<any>(
      'mutation { createApplication(input: { name: "Management again", type: MANAGEMENT }) { __typename } }',
      {},
      key,
    );
    expect(created.data?.createApplication.__typename).toBe('CreateApplicationPayload');
  });

  it('is NOT_FOUND for an unknown tenant, and refused to every tenant key', async () => {
    const unknown = await gateway.gql<any>(
      CREATE_MANAGEMENT_KEY,
      { tenantId: '01a204cc-a83d-77b0-9658-e28eab878300' },
      ADMIN_KEY,
    );
    expect(unknown.data?.createManagementKey).toEqual({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
      status: 404,
      message: 'Tenant not found.',
    });
    const tenant = await gateway.createTenant('Own keys');
    const refused = await gateway.gql(CREATE_MANAGEMENT_KEY, { tenantId: tenant.tenantId }, tenant.managementKey);
    expect(errorCode(refused)).toBe('FORBIDDEN');
  });
});

describe('npm run create-management-key', () => {
  it('prints a working key for TENANT_ID, asks for TENANT_ID when there are several, and checks it', async () => {
    const tenant = await lockedOutTenant();
    await gateway.close();
    // The command's settings as a shell would give them: DATABASE_URL, or the DATA_DIR holding pgdata.
    const target = database.nextTarget();
    const config = loadConfig(
      testEnvironment(
        target.kind === 'postgres' ? { DATABASE_URL: target.url } : { DATA_DIR: path.dirname(target.dataDir!) },
      ),
    );
    // The tests' database holds several tenants by now.
    await expect(runCreateManagementKey(config, undefined)).rejects.toThrow(
      /^There are several tenants; set TENANT_ID to one of them:\n {2}[0-9a-f-]{36} {2}/,
    );
    await expect(runCreateManagementKey(config, 'tenant-1')).rejects.toThrow(
      'TENANT_ID "tenant-1" is not a tenant id (a UUID).',
    );
    await expect(runCreateManagementKey(config, '01a204cc-a83d-77b0-9658-e28eab878300')).rejects.toThrow(
      'There is no tenant 01a204cc-a83d-77b0-9658-e28eab878300.',
    );
    const report = await runCreateManagementKey(config, tenant.tenantId);
    expect(report).toMatch(new RegExp(`^Tenant ${tenant.tenantId} has a new MANAGEMENT application`));
    const key = /^ {2}(key_\S+)$/m.exec(report)?.[1];
    expect(key).toEqual(expect.any(String));

    gateway = await startTestGateway({ database, target: database.nextTarget() });
    const viewer = (await gateway.gql<any>(VIEWER, {}, key)).data?.viewer;
    expect(viewer).toMatchObject({
      tenant: { id: tenant.tenantId },
      application: { type: 'MANAGEMENT', permissions: EVERY_MANAGEMENT_PERMISSION },
    });
  });
});
