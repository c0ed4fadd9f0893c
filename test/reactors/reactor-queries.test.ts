import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OFFICIAL_FORMULA_IDS } from '../../src/formulas/official.ts';
import { createApplication, createFormula, UNKNOWN_ID } from '../formulas/helpers.ts';
import { usingPostgres } from '../support/database.ts';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { grantPrivateKey } from '../tokens/support.ts';
import { createReactor, GET_REACTOR } from './helpers.ts';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

const LIST = `query($ids: [UUID!], $name: String, $first: Int, $after: String) {
  reactors(ids: $ids, name: $name, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { node { id name } } } }`;

async function list(key: string, variables: Record<string, unknown> = {}) {
  const result = await gateway.gql(LIST, variables, key);
  if (result.errors) throw new Error(JSON.stringify(result.errors));
  return result.data?.reactors;
}

const names = (page: any) => page.edges.map((e: any) => e.node.name);

async function reactorsNamed(key: string, ...list: string[]) {
  const created = [];
  for (const name of list)
    created.push(await createReactor(gateway, key, { name, formulaId: OFFICIAL_FORMULA_IDS.echo }));
  return created;
}

describe('reactors and reactor', () => {
  it("lists the tenant's reactors oldest first, never another tenant's", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    await reactorsNamed(mine.managementKey, 'a', 'b');
    await reactorsNamed(theirs.managementKey, 'theirs');
    const page = await list(mine.managementKey);
    expect(names(page)).toEqual(['a', 'b']);
    expect(page.totalCount).toBe(2);
  });

  it('filters by ids (an empty list matches none) and by name', async () => {
    const tenant = await gateway.createTenant();
    const [a, , c] = await reactorsNamed(tenant.managementKey, 'Stripe charge', 'Adyen', 'stripe REFUND');
    expect(names(await list(tenant.managementKey, { ids: [c?.id, a?.id, UNKNOWN_ID] }))).toEqual([
      'Stripe charge',
      'stripe REFUND',
    ]);
    expect(await list(tenant.managementKey, { ids: [] })).toMatchObject({ totalCount: 0, edges: [] });
    expect(names(await list(tenant.managementKey, { name: 'STRIPE' }))).toEqual(['Stripe charge', 'stripe REFUND']);
    expect((await list(tenant.managementKey, { name: 'stripe*refund', ids: [a?.id, c?.id] })).totalCount).toBe(1);
  });

  it('pages with first/after, stable when reactors are created between pages', async () => {
    const tenant = await gateway.createTenant();
    await reactorsNamed(tenant.managementKey, 'a', 'b', 'c');
    const first = await list(tenant.managementKey, { first: 2 });
    expect(names(first)).toEqual(['a', 'b']);
    expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    await reactorsNamed(tenant.managementKey, 'd');
    const second = await list(tenant.managementKey, { first: 2, after: first.pageInfo.endCursor });
    expect(names(second)).toEqual(['c', 'd']);
    expect(second.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
  });

  it('refuses first over 100 and more than 100 ids as BAD_REQUEST', async () => {
    const tenant = await gateway.createTenant();
    expect(errorCode(await gateway.gql(LIST, { first: 101 }, tenant.managementKey))).toBe('BAD_REQUEST');
    const ids = Array.from({ length: 101 }, (_, i) => `01a204cc-a83d-77b0-9658-${String(i).padStart(12, '0')}`);
    const tooMany = await gateway.gql(LIST, { ids }, tenant.managementKey);
    expect(errorCode(tooMany)).toBe('BAD_REQUEST');
    expect(tooMany.errors?.[0]?.extensions?.errors).toEqual({ ids: ['must list at most 100 ids'] });
  });

  it("reads another tenant's reactor as null, exactly like an unknown id", async () => {
    const mine = await gateway.createTenant();
    const theirs = await gateway.createTenant();
    const [their] = await reactorsNamed(theirs.managementKey, 'theirs');
    const forTheirs = await gateway.gql(GET_REACTOR, { id: their?.id }, mine.managementKey);
    expect(forTheirs).toEqual(await gateway.gql(GET_REACTOR, { id: UNKNOWN_ID }, mine.managementKey));
    expect(forTheirs).toEqual({ data: { reactor: null } });
    expect(await list(mine.managementKey, { ids: [their?.id] })).toMatchObject({ totalCount: 0, edges: [] });
  });

  it('lets a private key read reactors only when granted reactor:read, and refuses a PUBLIC key', async () => {
    const tenant = await gateway.createTenant();
    const [reactor] = await reactorsNamed(tenant.managementKey, 'r');
    // By default a PRIVATE key may not: a reactor's configuration holds its processor's secrets.
    expect(errorCode(await gateway.gql(GET_REACTOR, { id: reactor?.id }, tenant.privateKey))).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql(LIST, {}, tenant.privateKey))).toBe('FORBIDDEN');
    await grantPrivateKey(gateway, tenant, ['reactor:read']);
    expect((await gateway.gql(GET_REACTOR, { id: reactor?.id }, tenant.privateKey)).data?.reactor.name).toBe('r');
    const browser = await createApplication(gateway, tenant.managementKey, 'PUBLIC');
    expect(errorCode(await gateway.gql(GET_REACTOR, { id: reactor?.id }, browser.key))).toBe('FORBIDDEN');
    expect(errorCode(await gateway.gql(LIST, {}, browser.key))).toBe('FORBIDDEN');
  });

  /** A new tenant with a PRIVATE application and a reactor bound to it. */
  async function boundReactor() {
    const tenant = await gateway.createTenant();
    const backend = await createApplication(gateway, tenant.managementKey, 'PRIVATE');
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'bound',
      formulaId: OFFICIAL_FORMULA_IDS.echo,
      applicationId: backend.id,
    });
    return { tenant, backend, reactor };
  }

  it("shows a private key the id of a reactor's application, and its details only with application:read", async () => {
    const { tenant, backend, reactor } = await boundReactor();
    await grantPrivateKey(gateway, tenant, ['reactor:read']);
    const READ = 'query($id: UUID!) { reactor(id: $id) { applicationId application { id permissions keyPrefix } } }';
    // A PRIVATE key granted reactor:read, but not application:read, which `application(id)` needs too.
    const asPrivate = await gateway.gql<any>(READ, { id: reactor.id }, tenant.privateKey);
    expect(asPrivate.data?.reactor).toEqual({ applicationId: backend.id, application: null });
    expect(asPrivate.errors).toHaveLength(1);
    expect(asPrivate.errors?.[0]).toMatchObject({
      path: ['reactor', 'application'],
      extensions: { code: 'FORBIDDEN' },
    });
    const asManagement = await gateway.gql<any>(READ, { id: reactor.id }, tenant.managementKey);
    expect(asManagement.errors).toBeUndefined();
    expect(asManagement.data?.reactor).toMatchObject({ applicationId: backend.id, application: { id: backend.id } });
  });

  it('shows a deleted application as null on its reactors', async () => {
    const { tenant, backend, reactor } = await boundReactor();
    await gateway.gql(
      'mutation($id: UUID!) { deleteApplication(id: $id) { __typename } }',
      { id: backend.id },
      tenant.managementKey,
    );
    expect(
      (await gateway.gql(GET_REACTOR, { id: reactor.id }, tenant.managementKey)).data?.reactor.application,
    ).toBeNull();
  });

  // Formulas are read after the reactors that name them. A reactor deleted, and then its formula, between the two
  // reads was, for that request, a reactor whose formula was gone: the NOT_FOUND of its non-null `formula` took
  // the whole list with it. The interleaving is made here by holding a lock on the formulas across the deletes.
  it.runIf(usingPostgres)(
    'leaves out of a page, and answers null for, a reactor deleted with its formula while it was being read',
    async () => {
      const tenant = await gateway.createTenant();
      const key = tenant.managementKey;
      const doomedReactor = async () => {
        const formula = await createFormula(gateway, key, { configuration: [] });
        const reactor = await createReactor(gateway, key, { name: 'doomed', formulaId: formula.id });
        return { formulaId: formula.id as string, id: reactor.id as string };
      };
      await createReactor(gateway, key, { name: 'kept', formulaId: OFFICIAL_FORMULA_IDS.echo });
      const direct = new pg.Client({ connectionString: gateway.database.url! });
      await direct.connect();
      try {
        const raced = async <T>(doomed: { formulaId: string; id: string }, read: () => Promise<T>): Promise<T> => {
          await direct.query('begin');
          await direct.query('lock table reactor_formulas in access exclusive mode');
          const answer = read();
          // The gateway has read the reactors and waits for their formulas.
          await until('the formula read to wait for the lock', async () => {
            const { rows } = await direct.query<{ n: number }>(
              "select count(*)::int as n from pg_locks where not granted and relation = 'reactor_formulas'::regclass",
            );
            return rows[0]!.n > 0 ? true : undefined;
          });
          await direct.query('delete from reactors where id = $1', [doomed.id]);
          await direct.query('delete from reactor_formulas where id = $1', [doomed.formulaId]);
          await direct.query('commit');
          return answer;
        };
        const page = await raced(await doomedReactor(), () =>
          gateway.gql('{ reactors(first: 20) { edges { node { name formula { id } } } } }', {}, key),
        );
        expect(page.errors).toBeUndefined();
        expect(page.data?.reactors.edges).toEqual([
          { node: { name: 'kept', formula: { id: OFFICIAL_FORMULA_IDS.echo } } },
        ]);
        const doomed = await doomedReactor();
        const one = await raced(doomed, () =>
          gateway.gql('query($id: UUID!) { reactor(id: $id) { name formula { id } } }', { id: doomed.id }, key),
        );
        expect(one).toEqual({ data: { reactor: null } });
      } finally {
        await direct.end();
      }
    },
  );
});

describe('loadReactorForInvocation', () => {
  it('loads the reactor and what running it needs from its formula', async () => {
    const tenant = await gateway.createTenant();
    const backend = await createApplication(gateway, tenant.managementKey, 'PRIVATE');
    const formula = await createFormula(gateway, tenant.managementKey);
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'r',
      formulaId: formula.id,
      configuration: { SERVICE_API_KEY: 'k' },
      applicationId: backend.id,
    });
    const loaded = await gateway.app.services.reactors.loadReactorForInvocation(tenant.tenantId, reactor.id);
    const row = await gateway.app.database.db
      .selectFrom('reactor_formulas')
      .select('code_hash')
      .where('id', '=', formula.id)
      .executeTakeFirstOrThrow();
    expect(loaded).toEqual({
      reactor: {
        id: reactor.id,
        name: 'r',
        tenantId: tenant.tenantId,
        configuration: { SERVICE_API_KEY: 'k' },
        configurationErrors: null,
        applicationId: backend.id,
      },
      formula: {
        id: formula.id,
        code: formula.formulaCode,
        codeHash: row.code_hash,
        requestParameters: formula.requestParameters,
        configuration: formula.configuration,
      },
    });
  });

  it("is tenant-scoped: another tenant's reactor loads as null", async () => {
    const theirs = await gateway.createTenant();
    const mine = await gateway.createTenant();
    const [reactor] = await reactorsNamed(theirs.managementKey, 'theirs');
    expect(await gateway.app.services.reactors.loadReactorForInvocation(mine.tenantId, reactor?.id)).toBeNull();
    expect(await gateway.app.services.reactors.loadReactorForInvocation(mine.tenantId, UNKNOWN_ID)).toBeNull();
  });

  it('loads a reactor of an official formula, whose code runs in the sandbox', async () => {
    const tenant = await gateway.createTenant();
    const reactor = await createReactor(gateway, tenant.managementKey, {
      name: 'signer',
      formulaId: OFFICIAL_FORMULA_IDS.hmacSha256,
      configuration: { SECRET: 'k' },
    });
    const loaded = await gateway.app.services.reactors.loadReactorForInvocation(tenant.tenantId, reactor.id);
    expect(loaded?.formula.id).toBe(OFFICIAL_FORMULA_IDS.hmacSha256);
    const outcome = await gateway.app.services.runtime.run({
      tenantId: tenant.tenantId,
      formulaId: loaded!.formula.id,
      code: loaded!.formula.code,
      codeHash: loaded!.formula.codeHash,
      args: { value: 'v' },
      configuration: loaded!.reactor.configuration,
      bt: null,
      timeoutMs: 5_000,
    });
    expect(outcome).toMatchObject({ ok: true, raw: { algorithm: 'HMAC-SHA256' } });
  });
});
