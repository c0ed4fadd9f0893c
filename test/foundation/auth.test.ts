import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

const VIEWER = '{ viewer { tenant { id name } application { id name type permissions } } }';

describe('authentication', () => {
  it('answers viewer with the tenant and application of a management key', async () => {
    const tenant = await gateway.createTenant('Acme');
    const result = await gateway.gql(VIEWER, {}, tenant.managementKey);
    expect(result.errors).toBeUndefined();
    expect(result.data?.viewer.tenant).toEqual({ id: tenant.tenantId, name: 'Acme' });
    expect(result.data?.viewer.application.type).toBe('MANAGEMENT');
    expect(result.data?.viewer.application.permissions).toContain('reactor:create');
  });

  it('accepts the key as Authorization: Bearer as well as BT-API-KEY', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(VIEWER, {}, null, { authorization: `Bearer ${tenant.privateKey}` });
    expect(result.data?.viewer.application.type).toBe('PRIVATE');
  });

  it('answers UNAUTHENTICATED (401) without a key', async () => {
    const result = await gateway.gql(VIEWER);
    expect(errorCode(result)).toBe('UNAUTHENTICATED');
    expect(result.errors?.[0]?.extensions?.status).toBe(401);
    expect(result.data?.viewer ?? null).toBeNull();
  });

  it('answers UNAUTHENTICATED for an unknown key', async () => {
    const result = await gateway.gql(VIEWER, {}, 'key_not-a-real-key');
    expect(errorCode(result)).toBe('UNAUTHENTICATED');
  });

  it('answers UNAUTHENTICATED for the key of a deleted application', async () => {
    const tenant = await gateway.createTenant();
    const created = await gateway.gql(
      `mutation { createApplication(input: { name: "Backend", type: PRIVATE }) {
        __typename ... on CreateApplicationPayload { key application { id } } } }`,
      {},
      tenant.managementKey,
    );
    const { key, application } = created.data!.createApplication;
    expect((await gateway.gql(VIEWER, {}, key)).data?.viewer.application.id).toBe(application.id);

    const deleted = await gateway.gql(
      'mutation($id: UUID!) { deleteApplication(id: $id) { __typename ... on Application { id } } }',
      { id: application.id },
      tenant.managementKey,
    );
    expect(deleted.data?.deleteApplication).toEqual({ __typename: 'Application', id: application.id });
    expect(errorCode(await gateway.gql(VIEWER, {}, key))).toBe('UNAUTHENTICATED');
  });

  it('answers FORBIDDEN (403) to a key without the permission', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql('{ applications { edges { node { id } } } }', {}, tenant.privateKey);
    expect(errorCode(result)).toBe('FORBIDDEN');
    expect(result.errors?.[0]?.extensions?.status).toBe(403);
  });

  it('never returns a stored key or its hash', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql('{ applications { edges { node { keyPrefix } } } }', {}, tenant.managementKey);
    const prefixes = result.data?.applications.edges.map((edge: any) => edge.node.keyPrefix);
    expect(prefixes).toHaveLength(2);
    for (const prefix of prefixes) expect(prefix.length).toBeLessThan(12);
    const row = await gateway.app.database.db
      .selectFrom('applications')
      .selectAll()
      .where('tenant_id', '=', tenant.tenantId)
      .execute();
    // Each stored hash is the SHA-256 of one of the two keys (one-way), and neither key appears in any column.
    const sha256 = (key: string) => createHash('sha256').update(key).digest('base64url');
    expect(row.map((application) => application.key_hash).sort()).toEqual(
      [sha256(tenant.managementKey), sha256(tenant.privateKey)].sort(),
    );
    const stored = JSON.stringify(row);
    for (const key of [tenant.managementKey, tenant.privateKey]) expect(stored).not.toContain(key.slice(4));
  });
});

describe('createTenant (operator)', () => {
  it('is refused without the admin key', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(
      'mutation { createTenant(input: { name: "x" }) { __typename } }',
      {},
      tenant.managementKey,
    );
    expect(errorCode(result)).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql('mutation { createTenant(input: { name: "x" }) { __typename } }'))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('is refused when ADMIN_API_KEY is not configured, whatever key is sent', async () => {
    const other = await startTestGateway({ env: { ADMIN_API_KEY: '' } });
    try {
      const result = await other.gql('mutation { createTenant(input: { name: "x" }) { __typename } }', {}, ADMIN_KEY);
      expect(errorCode(result)).toBe('UNAUTHENTICATED');
    } finally {
      await other.close();
    }
  });

  it('rejects an empty tenant name as BAD_REQUEST', async () => {
    const result = await gateway.gql(
      'mutation { createTenant(input: { name: "  " }) { __typename ... on Error { code status errors } } }',
      {},
      ADMIN_KEY,
    );
    expect(result.data?.createTenant).toMatchObject({
      __typename: 'BadRequestError',
      code: 'BAD_REQUEST',
      status: 400,
    });
    expect(result.data?.createTenant.errors).toHaveProperty('name');
  });
});

describe('applications', () => {
  it('creates an application whose key is shown once and works', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(
      `mutation { createApplication(input: { name: "Browser", type: PUBLIC }) {
        __typename ... on CreateApplicationPayload { key application { name type permissions } } } }`,
      {},
      tenant.managementKey,
    );
    const payload = result.data?.createApplication;
    expect(payload.application).toEqual({ name: 'Browser', type: 'PUBLIC', permissions: ['token:create'] });
    expect(payload.key).toMatch(/^key_[A-Za-z0-9_-]{43}$/);
    const viewer = await gateway.gql(VIEWER, {}, payload.key);
    expect(viewer.data?.viewer.tenant.id).toBe(tenant.tenantId);
  });

  it('refuses a permission the application type may not hold', async () => {
    const tenant = await gateway.createTenant();
    const result = await gateway.gql(
      `mutation { createApplication(input: { name: "B", type: PUBLIC, permissions: ["token:read", "nope"] }) {
        __typename ... on BadRequestError { errors } } }`,
      {},
      tenant.managementKey,
    );
    expect(result.data?.createApplication.__typename).toBe('BadRequestError');
    expect(result.data?.createApplication.errors.permissions).toHaveLength(2);
  });

  it('pages through applications with first/after and counts them', async () => {
    const tenant = await gateway.createTenant();
    for (const name of ['a', 'b', 'c']) {
      await gateway.gql(
        'mutation($name: String!) { createApplication(input: { name: $name, type: PRIVATE }) { __typename } }',
        { name },
        tenant.managementKey,
      );
    }
    const query = `query($after: String) { applications(first: 2, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }`;
    const first = await gateway.gql(query, {}, tenant.managementKey);
    expect(first.data?.applications.totalCount).toBe(5);
    expect(first.data?.applications.edges.map((e: any) => e.node.name)).toEqual(['Management', 'Private']);
    expect(first.data?.applications.pageInfo.hasNextPage).toBe(true);
    const second = await gateway.gql(
      query,
      { after: first.data?.applications.pageInfo.endCursor },
      tenant.managementKey,
    );
    expect(second.data?.applications.edges.map((e: any) => e.node.name)).toEqual(['a', 'b']);
    const bad = await gateway.gql(query, { after: 'garbage' }, tenant.managementKey);
    expect(errorCode(bad)).toBe('BAD_REQUEST');
  });

  it("treats another tenant's application id exactly like an unknown id", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const theirApp = (await gateway.gql('{ viewer { application { id } } }', {}, theirs.managementKey)).data?.viewer
      .application.id;
    const unknown = '01a204cc-a83d-77b0-9658-e28eab878300';
    const read = 'query($id: UUID!) { application(id: $id) { id } }';
    expect(await gateway.gql(read, { id: theirApp }, mine.managementKey)).toEqual(
      await gateway.gql(read, { id: unknown }, mine.managementKey),
    );
    const remove = 'mutation($id: UUID!) { deleteApplication(id: $id) { __typename ... on Error { code message } } }';
    expect(await gateway.gql(remove, { id: theirApp }, mine.managementKey)).toEqual(
      await gateway.gql(remove, { id: unknown }, mine.managementKey),
    );
    const list = await gateway.gql('{ applications { edges { node { id } } } }', {}, mine.managementKey);
    expect(list.data?.applications.edges.map((e: any) => e.node.id)).not.toContain(theirApp);
    // Their application still exists.
    expect((await gateway.gql(read, { id: theirApp }, theirs.managementKey)).data?.application.id).toBe(theirApp);
  });
});
