import type { KyselyPlugin } from 'kysely';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { newId } from '../../src/db/ids.ts';
import { OFFICIAL_FORMULA_IDS } from '../../src/formulas/official.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { ADMIN_KEY, type GraphQLResponse, testEnvironment } from '../support/gateway.ts';

/**
 * Proves the DataLoaders and the indexes by counting what reaches the database. The gateway here is built with a
 * Kysely plugin that counts executed queries (AppOptions.queryPlugin); everything else is the real app.
 */
let queries = 0;
const countQueries: KyselyPlugin = {
  transformQuery: (args) => args.node,
  transformResult: async (args) => {
    queries++;
    return args.result;
  },
};

let database: TestDatabase;
let app: App;
beforeAll(async () => {
  database = await createTestDatabase();
  const config = loadConfig(testEnvironment());
  app = await createApp(config, createLogger(config.logLevel), {
    database: database.target,
    queryPlugin: countQueries,
  });
});
afterAll(async () => {
  await app?.close();
  await database?.drop();
});

async function gql(query: string, variables: Record<string, unknown>, key: string): Promise<GraphQLResponse> {
  const response = await app.yoga.fetch('http://gateway.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'bt-api-key': key },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLResponse;
}

/** A tenant with `count` reactors spread over 3 official formulas and 2 applications (every third has none). */
async function tenantWithReactors(count: number) {
  const created = await gql(
    'mutation { createTenant(input: { name: "t" }) { ... on CreateTenantPayload { tenant { id } managementKey } } }',
    {},
    ADMIN_KEY,
  );
  const { tenant, managementKey } = created.data?.createTenant ?? {};
  const applications = await app.database.db
    .selectFrom('applications')
    .select('id')
    .where('tenant_id', '=', tenant.id)
    .where('type', '=', 'PRIVATE')
    .execute();
  const extra = await gql(
    'mutation { createApplication(input: { name: "b", type: PUBLIC }) { ... on CreateApplicationPayload { application { id } } } }',
    {},
    managementKey,
  );
  const applicationIds = [applications[0]?.id, extra.data?.createApplication.application.id, null];
  const formulaIds = Object.values(OFFICIAL_FORMULA_IDS);
  const rows = Array.from({ length: count }, (_, i) => ({
    id: newId(),
    tenant_id: tenant.id,
    name: `reactor ${i}`,
    formula_id: formulaIds[i % formulaIds.length] as string,
    application_id: applicationIds[i % applicationIds.length] ?? null,
    configuration: JSON.stringify(i % 3 === 2 ? { SECRET: 's' } : {}),
    created_by: null,
  }));
  if (rows.length > 0) await app.database.db.insertInto('reactors').values(rows).execute();
  return { tenantId: tenant.id as string, key: managementKey as string };
}

const PAGE = `query($first: Int) { reactors(first: $first) { edges { node {
  id name formula { id name requestParameters { name } } application { id type } } } } }`;
const COUNTED_PAGE = 'query($first: Int) { reactors(first: $first) { totalCount edges { node { id } } } }';

async function queriesFor(query: string, variables: Record<string, unknown>, key: string) {
  await gql(query, variables, key); // warms the API-key cache, so only the list's own queries are counted
  queries = 0;
  const result = await gql(query, variables, key);
  expect(result.errors).toBeUndefined();
  return { count: queries, result };
}

describe('batching (no N+1)', () => {
  it('lists 100 reactors with their formula and application in 3 queries, as many as for 2', async () => {
    const big = await tenantWithReactors(100);
    const small = await tenantWithReactors(2);
    const many = await queriesFor(PAGE, { first: 100 }, big.key);
    const edges = many.result.data?.reactors.edges;
    expect(edges).toHaveLength(100);
    expect(new Set(edges.map((e: any) => e.node.formula.id)).size).toBe(3);
    expect(edges.filter((e: any) => e.node.application === null)).toHaveLength(33);
    expect(edges[0].node.formula.name).toBe('Echo');
    // One page query, one batch of formulas, one batch of applications.
    expect(many.count).toBe(3);
    expect((await queriesFor(PAGE, { first: 100 }, small.key)).count).toBe(many.count);
  });

  it('counts only when totalCount is selected', async () => {
    const tenant = await tenantWithReactors(5);
    const without = await queriesFor('query { reactors { edges { node { id } } } }', {}, tenant.key);
    const withCount = await queriesFor(COUNTED_PAGE, { first: 20 }, tenant.key);
    expect(without.count).toBe(1);
    expect(withCount.count).toBe(2);
    expect(withCount.result.data?.reactors.totalCount).toBe(5);
  });
});

describe('indexes', () => {
  it('serves reactors(first: 20) of a tenant with 100,000 reactors from the (tenant_id, id) index', async () => {
    const big = await tenantWithReactors(0);
    const small = await tenantWithReactors(100);
    await sql`insert into reactors (id, tenant_id, name, formula_id, configuration)
      select gen_random_uuid(), ${big.tenantId}::uuid, 'bulk ' || g, ${OFFICIAL_FORMULA_IDS.echo}::uuid, '{}'::jsonb
      from generate_series(1, 100000) g`.execute(app.database.db);
    await sql`analyze reactors`.execute(app.database.db);

    const plan = await sql<{ 'QUERY PLAN': string }>`explain select * from reactors
      where tenant_id = ${big.tenantId}::uuid order by id limit 21`.execute(app.database.db);
    const text = plan.rows.map((row) => row['QUERY PLAN']).join('\n');
    expect(text).toContain('reactors_tenant_id_id');
    expect(text).not.toMatch(/Seq Scan|Sort/);

    const query = 'query { reactors(first: 20) { edges { node { id name } } } }';
    const median = async (key: string) => {
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const started = performance.now();
        expect((await gql(query, {}, key)).data?.reactors.edges).toHaveLength(20);
        times.push(performance.now() - started);
      }
      return times.sort((a, b) => a - b)[7] as number;
    };
    await median(big.key);
    const [bigMs, smallMs] = [await median(big.key), await median(small.key)];
    // Same plan, same 21 index entries read: the sizes differ 1,000-fold, the times must not.
    expect(bigMs).toBeLessThan(smallMs * 3 + 20);
  }, 120_000);
});
