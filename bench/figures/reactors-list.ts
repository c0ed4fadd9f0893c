import { sql } from 'kysely';
import { type LoadResult, loadGraphQL, median, medianOf } from '../lib/load.ts';
import { createReactorOfCode, createTenant, hasRootField, TRIVIAL_FORMULA } from '../lib/seed.ts';
import { type BenchContext, checked, type Figure, type Row, type SeedContext } from './types.ts';

const LIST = '{ reactors(first: 20) { edges { node { id name } } pageInfo { hasNextPage endCursor } } }';

/**
 * `reactors(first: 20)` for a tenant of 100,000 reactors against one of 100 (target: at most 1.5x slower). Keyset
 * pagination should make the first page cost the same at any size. Seeded before any gateway starts (`seed`,
 * through the gateway's own code in the harness's process): the two tenants and a reactor each through the API,
 * then one bulk INSERT ... SELECT of copies; measured on the main gateway. It used to take a gateway of its own,
 * stopped for the insert (a PGlite directory belongs to one process) and started again: the longest path of the
 * quick run's start-up.
 */
let seeded: Promise<Seeded> | undefined;

interface Seeded {
  large: number;
  contenders: { name: string; key: string }[];
}

export const reactorsList: Figure = {
  name: 'reactors list at 100,000 vs 100',
  available: async (context) =>
    ((await hasRootField(context.gateway.url, 'Query', 'reactors')) &&
      (await hasRootField(context.gateway.url, 'Mutation', 'createReactor'))) ||
    'no reactors / createReactor yet',
  async seed(context) {
    seeded = seedTenants(context);
    // A failure surfaces in run(), where it fails this figure only.
    await seeded.catch(() => {});
  },
  async run(context: BenchContext): Promise<Row[]> {
    if (!seeded) throw new Error('seed() did not run');
    const { large, contenders } = await seeded;
    seeded = undefined;
    context.log(`  seeded 100 and ${large} reactors`);

    const results = new Map<string, LoadResult[]>(contenders.map((c) => [c.name, []]));
    const run = (contender: { key: string }, durationSeconds: number) =>
      loadGraphQL({
        url: context.gateway.url,
        query: LIST,
        headers: { 'bt-api-key': contender.key },
        connections: context.connections,
        durationSeconds,
      });
    for (const contender of contenders) await run(contender, context.quick ? 0.5 : 1);
    for (let round = 1; round <= context.rounds; round++) {
      for (const contender of contenders) {
        const result = await run(contender, context.durationSeconds);
        context.log(
          `  round ${round} ${contender.name} reactors: ${result.rps.toFixed(0)} req/s, p50 ${result.p50Ms} ms`,
        );
        results.get(contender.name)!.push(result);
      }
    }
    const figure = 'reactors list';
    const rows: Row[] = [];
    for (const contender of contenders) {
      const m = medianOf(results.get(contender.name)!);
      const note = m.failures ? `${m.failures} failed requests` : undefined;
      rows.push({ figure, metric: `first 20 of ${contender.name} req/s`, value: m.rps, unit: 'req/s', note });
      rows.push({ figure, metric: `first 20 of ${contender.name} p50`, value: m.p50Ms, unit: 'ms' });
      rows.push({ figure, metric: `first 20 of ${contender.name} p99`, value: m.p99Ms, unit: 'ms' });
    }
    const [few, many] = contenders.map((c) => results.get(c.name)!);
    rows.push(
      checked(
        {
          figure,
          metric: `throughput at 100 / at ${large}`,
          value: median(few!.map((r, i) => r.rps / many![i]!.rps)),
          unit: 'x',
          target: '≤ 1.5',
          note: context.quick ? 'quick: 20,000 reactors' : undefined,
        },
        (v) => v <= 1.5,
      ),
    );
    return rows;
  },
};

async function seedTenants(context: SeedContext): Promise<Seeded> {
  const large = context.quick ? 20_000 : 100_000;
  const { gateway } = context;
  const small = await createTenant(gateway, 'Bench: 100 reactors');
  const big = await createTenant(gateway, `Bench: ${large} reactors`);
  const seeds = [
    { tenant: small, reactorId: await createReactorOfCode(gateway, TRIVIAL_FORMULA, small.managementKey), count: 100 },
    { tenant: big, reactorId: await createReactorOfCode(gateway, TRIVIAL_FORMULA, big.managementKey), count: large },
  ];
  for (const seed of seeds) {
    // Copies of the reactor created through the API, so every row is one the service itself would write.
    await sql`insert into reactors (id, tenant_id, name, formula_id, application_id, configuration, created_by, created_at)
      select gen_random_uuid(), r.tenant_id, 'Bench reactor ' || g, r.formula_id, r.application_id, r.configuration,
             r.created_by, now()
      from reactors r, generate_series(2, ${seed.count}) g
      where r.id = ${seed.reactorId}`.execute(gateway.db);
  }
  await sql`analyze reactors`.execute(gateway.db);
  const contenders = seeds.map((seed) => ({ name: String(seed.count), key: seed.tenant.managementKey }));
  return { large, contenders };
}
