import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { ADMIN_KEY, errorCode, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { allowTokenUpdates, card, createToken, createTransaction, readToken, updateToken } from '../tokens/support.ts';

// The operator's view of tenants (the ADMIN_API_KEY): listing them, and deleting one with everything it owns.
let database: TestDatabase;
let gateway: TestGateway;
let server: RunningServer;
beforeAll(async () => {
  database = await createTestDatabase();
  gateway = await startTestGateway({ database });
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
  await database?.drop();
});

const TENANTS = `query($first: Int, $after: String) { tenants(first: $first, after: $after) {
  totalCount edges { node { id name createdAt } } pageInfo { hasNextPage endCursor } } }`;
const DELETE_TENANT = `mutation($id: UUID!) { deleteTenant(id: $id) {
  __typename ... on Tenant { id name } ... on Error { code status message } } }`;
const UNKNOWN_ID = '01a204cc-a83d-77b0-9658-e28eab878300';

/**
 * A tenant with something in every table: a token, a pending token and a pending update in an open transaction, a
 * stored idempotent response, a reactor and an async result.
 */
async function populatedTenant(name: string) {
  const tenant = await gateway.createTenant(name);
  const token = await createToken(gateway, tenant.privateKey, { type: 'CARD', data: card() });
  const tx = (await createTransaction(gateway, tenant.privateKey)).id;
  await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'pending' }, tx);
  await allowTokenUpdates(gateway, tenant);
  await updateToken(gateway, tenant.privateKey, token.id, { metadata: { pending: true } }, tx);
  // A stored idempotent response (over a real port, where the Idempotency-Key is honoured).
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'bt-api-key': tenant.privateKey, 'idempotency-key': name },
    body: JSON.stringify({ query: 'mutation { createTransaction { id } }' }),
  });
  expect(response.status).toBe(200);
  const reactorId = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async (req) => ({ raw: { last4: req.args.card.number.slice(-4) } });',
  );
  const queued = await gateway.gql<any>(
    REACT_ASYNC,
    { id: reactorId, args: { card: `{{ ${token.id} }}` } },
    tenant.privateKey,
  );
  const requestId = queued.data?.reactAsync.asyncReactorRequestId;
  await until('the async run done', async () => {
    const result = await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey);
    return result.data?.reactorResult?.status === 'COMPLETED' ? true : undefined;
  });
  return { tenant, token, reactorId };
}

/** Rows of `tenantId` in every table with a tenant_id column (found in the catalog, so a new table counts too). */
async function rowsOf(tenantId: string): Promise<Record<string, number>> {
  const db = gateway.app.database.db;
  const { rows: tables } = await sql<{ name: string }>`select table_name as name from information_schema.columns
    where table_schema = current_schema() and column_name = 'tenant_id' order by table_name`.execute(db);
  const counts: Record<string, number> = {};
  for (const { name } of tables) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(name)}
      where tenant_id = ${tenantId}`.execute(db);
    counts[name] = rows[0]!.n;
  }
  const own = await sql<{ n: number }>`select count(*)::int as n from tenants where id = ${tenantId}`.execute(db);
  counts.tenants = own.rows[0]!.n;
  return counts;
}

describe('tenants (operator only)', () => {
  it('lists every tenant, oldest first, a page at a time', async () => {
    const created: TestTenant[] = [];
    for (const name of ['Listed one', 'Listed two', 'Listed three']) created.push(await gateway.createTenant(name));
    const all: { id: string; name: string }[] = [];
    let after: string | null = null;
    for (;;) {
      const page: any = (await gateway.gql<any>(TENANTS, { first: 2, after }, ADMIN_KEY)).data?.tenants;
      all.push(...page.edges.map((edge: any) => edge.node));
      expect(page.totalCount).toBeGreaterThanOrEqual(3);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    const ids = all.map((tenant) => tenant.id);
    expect(ids).toEqual([...ids].sort());
    expect(all.filter((tenant) => tenant.name.startsWith('Listed ')).map((tenant) => tenant.id)).toEqual(
      created.map((tenant) => tenant.tenantId),
    );
  });

  it('refuses every other key, a management key included', async () => {
    const tenant = await gateway.createTenant();
    for (const key of [tenant.managementKey, tenant.privateKey, null]) {
      expect(errorCode(await gateway.gql(TENANTS, {}, key))).toMatch(/^(FORBIDDEN|UNAUTHENTICATED)$/);
      expect(errorCode(await gateway.gql(DELETE_TENANT, { id: tenant.tenantId }, key))).toMatch(
        /^(FORBIDDEN|UNAUTHENTICATED)$/,
      );
    }
    expect((await gateway.gql<any>('{ viewer { tenant { id } } }', {}, tenant.privateKey)).data?.viewer.tenant.id).toBe(
      tenant.tenantId,
    );
  });
});

describe('deleteTenant', () => {
  it('deletes the tenant and every row it owns, stops its keys at once, and leaves other tenants alone', async () => {
    const doomed = await populatedTenant('Leaving');
    const staying = await populatedTenant('Staying');
    const before = await rowsOf(doomed.tenant.tenantId);
    // Something in every table that holds tenant rows, so that the deletion below is checked everywhere.
    expect(Object.entries(before).filter(([, n]) => n === 0)).toEqual([]);

    const deleted = await gateway.gql<any>(DELETE_TENANT, { id: doomed.tenant.tenantId }, ADMIN_KEY);
    expect(deleted.data?.deleteTenant).toEqual({ __typename: 'Tenant', id: doomed.tenant.tenantId, name: 'Leaving' });
    const after = await rowsOf(doomed.tenant.tenantId);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    expect(Object.values(after).every((n) => n === 0)).toBe(true);
    for (const key of [doomed.tenant.managementKey, doomed.tenant.privateKey]) {
      expect(errorCode(await gateway.gql('{ viewer { tenant { id } } }', {}, key))).toBe('UNAUTHENTICATED');
    }

    expect(await rowsOf(staying.tenant.tenantId)).toEqual(before);
    expect((await readToken(gateway, staying.tenant.privateKey, staying.token.id)).data).toEqual(card());
    const reacted = await gateway.gql<any>(
      REACT,
      { id: staying.reactorId, args: { card: `{{ ${staying.token.id} }}` } },
      staying.tenant.privateKey,
    );
    expect(reacted.data?.react).toMatchObject({ __typename: 'ReactorResponse', raw: { last4: '4242' } });

    for (const id of [doomed.tenant.tenantId, UNKNOWN_ID]) {
      expect((await gateway.gql<any>(DELETE_TENANT, { id }, ADMIN_KEY)).data?.deleteTenant).toMatchObject({
        __typename: 'NotFoundError',
        code: 'NOT_FOUND',
        status: 404,
      });
    }
  });

  it.runIf(usingPostgres)('stops its keys on another instance within the key cache’s 5 s', async () => {
    const other = await startTestGateway({ database });
    try {
      const tenant = await gateway.createTenant();
      expect(errorCode(await other.gql('{ viewer { tenant { id } } }', {}, tenant.privateKey))).toBeUndefined();
      await gateway.gql(DELETE_TENANT, { id: tenant.tenantId }, ADMIN_KEY);
      // Meanwhile the other instance still trusts the key from its cache: a write for the tenant that is gone is
      // told so, not an unexpected failure.
      const write = await other.gql<any>('mutation { createTransaction { id } }', {}, tenant.privateKey);
      expect(write.errors?.[0]).toMatchObject({
        message: 'The tenant of this key was deleted.',
        extensions: { code: 'UNAUTHENTICATED', status: 401 },
      });
      await until(
        'the key refused on the other instance',
        async () =>
          errorCode(await other.gql('{ viewer { tenant { id } } }', {}, tenant.privateKey)) === 'UNAUTHENTICATED'
            ? true
            : undefined,
        8_000,
      );
    } finally {
      await other.close();
    }
  });
});
