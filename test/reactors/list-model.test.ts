import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFormula, createReactor } from '../support/fixtures.ts';
import { fuzzSettings } from '../support/fuzz.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

/**
 * `reactors` and `reactorFormulas` against a model: generated name searches (with `*`, and `%`, `_` and `\` taken
 * literally), id filters and page sizes, paged through to the end with the cursors. Every page must be the model's
 * slice (the tenant's rows, plus official formulas, filtered, in id order), `totalCount` the model's count, and no
 * row of the other tenant, which has reactors and formulas of the same names, may appear.
 */

const { seed: SEED, runs: RUNS } = fuzzSettings(40);

const ALPHABET = ['a', 'B', 'c', '%', '_', '\\', '*', ' ', 'é'];
const nameArb = fc.array(fc.constantFrom(...ALPHABET), { minLength: 1, maxLength: 6 }).map((chars) => chars.join(''));
const NAMES = fc.sample(nameArb, { numRuns: 24, seed: 7 });

interface Row {
  id: string;
  name: string;
}

let gateway: TestGateway;
let tenant: TestTenant;
const reactors: Row[] = [];
const formulas: Row[] = [];
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Lists');
  const other = await gateway.createTenant('Other');
  const code = 'module.exports = async () => ({ raw: null });';
  const [formulaId, otherFormulaId] = [
    await createFormula(gateway, tenant.managementKey, { code, name: 'base' }),
    await createFormula(gateway, other.managementKey, { code, name: 'base' }),
  ];
  formulas.push({ id: formulaId, name: 'base' });
  for (const name of NAMES) {
    // Names are stored trimmed.
    reactors.push({ id: await createReactor(gateway, tenant.managementKey, { name, formulaId }), name: name.trim() });
    formulas.push({ id: await createFormula(gateway, tenant.managementKey, { code, name }), name: name.trim() });
    await createReactor(gateway, other.managementKey, { name, formulaId: otherFormulaId });
    await createFormula(gateway, other.managementKey, { code, name });
  }
  const official = await gateway.app.database.db
    .selectFrom('reactor_formulas')
    .select(['id', 'name'])
    .where('tenant_id', 'is', null)
    .execute();
  formulas.push(...official);
});
afterAll(() => gateway?.close());

/** The seeds' wildcard search as a model: a case-insensitive substring, `*` matching any run of characters. */
function matches(name: string, search: string | undefined): boolean {
  if (!search) return true;
  const parts = search.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(parts.join('.*'), 'is').test(name);
}

const queryArb = fc.record(
  {
    name: fc.oneof(
      nameArb,
      fc.constantFrom(...NAMES).map((name) => name.toUpperCase()),
      fc.constantFrom(...NAMES).map((name) => name.slice(1, 3)),
      fc.constant(''),
    ),
    ids: fc.subarray([0, 1, 2, 3, 5, 8, 13, 21]),
    first: fc.integer({ min: 1, max: 7 }),
  },
  { requiredKeys: ['first'] },
);

async function pageThrough(
  field: 'reactors' | 'reactorFormulas',
  variables: { name?: string; ids?: string[]; first: number },
): Promise<{ ids: string[]; totalCounts: number[] }> {
  const idsArg = field === 'reactors' ? ', $ids: [UUID!]' : '';
  const idsUse = field === 'reactors' ? ', ids: $ids' : '';
  const query = `query($name: String, $first: Int, $after: String${idsArg}) {
    ${field}(name: $name, first: $first, after: $after${idsUse}) {
      totalCount edges { cursor node { id name } } pageInfo { hasNextPage endCursor } } }`;
  const ids: string[] = [];
  const totalCounts: number[] = [];
  let after: string | null = null;
  for (let page = 0; page < 60; page++) {
    const response: { data?: any; errors?: unknown } = await gateway.gql<any>(
      query,
      { ...variables, after },
      tenant.managementKey,
    );
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    const connection: any = response.data?.[field];
    totalCounts.push(connection.totalCount);
    ids.push(...connection.edges.map((edge: { node: Row }) => edge.node.id));
    if (!connection.pageInfo.hasNextPage) return { ids, totalCounts };
    after = connection.pageInfo.endCursor;
  }
  throw new Error('more pages than rows');
}

describe('lists against a model', () => {
  it('page through reactors as the model says, filtered by name and ids', async () => {
    await fc.assert(
      fc.asyncProperty(queryArb, async ({ name, ids: picks, first }) => {
        const ids = picks?.map((pick) => reactors[pick % reactors.length]!.id);
        const expected = reactors
          .filter((row) => matches(row.name, name) && (ids === undefined || ids.includes(row.id)))
          .map((row) => row.id)
          .sort();
        const got = await pageThrough('reactors', { name, ids, first });
        expect(got.ids).toEqual(expected);
        expect(new Set(got.totalCounts)).toEqual(new Set([expected.length]));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('page through formulas, official and the tenant’s own, as the model says, filtered by name', async () => {
    await fc.assert(
      fc.asyncProperty(queryArb, async ({ name, first }) => {
        const expected = formulas
          .filter((row) => matches(row.name, name))
          .map((row) => row.id)
          .sort();
        const got = await pageThrough('reactorFormulas', { name, first });
        expect(got.ids).toEqual(expected);
        expect(new Set(got.totalCounts)).toEqual(new Set([expected.length]));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
