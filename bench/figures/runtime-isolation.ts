import { BENCH_KEYS, startGateway } from '../lib/gateway.ts';
import { loadGraphQL, median, sequentialLatency } from '../lib/load.ts';
import type { ServerProcess } from '../lib/processes.ts';
import { createBenchToken, createReactorOfCode, hasRootField, REACT_MUTATION, TRIVIAL_FORMULA } from '../lib/seed.ts';
import { type BenchContext, type Figure, type Row, windowedRounds } from './types.ts';

/**
 * `react` with RUNTIME_ISOLATION=process (the sandbox's pool in a process of its own, README design notes) against
 * the default (threads in the gateway's process): the main gateway and a second one on the same kind of database,
 * each with its own reactor and token, rounds interleaved as in the react figure. What the second crossing costs;
 * no target. Full runs only: in `--quick` a third gateway start and its rounds would add about 20 s.
 */
let isolated: ServerProcess | undefined;

export const runtimeIsolation: Figure = {
  name: 'runtime isolation: react with the runtime in a process vs threads',
  available: async (context) => {
    if (context.quick) return 'full runs only (npm run bench without --quick)';
    return (await hasRootField(context.gateway.url, 'Mutation', 'react')) || 'no react mutation yet';
  },
  async prepare(context) {
    if (context.quick) return;
    isolated = await context.database
      .then(async (database) =>
        startGateway(database, {
          name: 'gateway (RUNTIME_ISOLATION=process)',
          env: { ...(await database.anotherInstance()), RUNTIME_ISOLATION: 'process' },
        }),
      )
      .then((server) => context.track(server));
  },
  async run(context: BenchContext): Promise<Row[]> {
    if (!isolated) throw new Error('prepare() did not run');
    const headers = { 'bt-api-key': BENCH_KEYS.private };
    const sides = [];
    for (const [name, url] of [
      ['threads', context.gateway.url],
      ['process', isolated.url],
    ] as const) {
      // On PGlite each gateway has a database of its own: each gets its reactor and token.
      const reactorId = await createReactorOfCode(url, TRIVIAL_FORMULA);
      const token = await createBenchToken(url, 'bench-secret-value');
      sides.push({ name, url, query: REACT_MUTATION, variables: { id: reactorId, args: token.args }, headers });
    }
    for (const side of sides) {
      await loadGraphQL({ ...side, connections: context.connections, durationSeconds: 3 });
    }
    const { rounds, windowSeconds } = windowedRounds(context);
    const perRequestMs = new Map<string, number[]>(sides.map((side) => [side.name, []]));
    const p50Ms = new Map<string, number[]>(sides.map((side) => [side.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const side of round % 2 === 1 ? sides : [...sides].reverse()) {
        const loaded = await loadGraphQL({ ...side, connections: context.connections, durationSeconds: windowSeconds });
        const single = await sequentialLatency({ ...side, durationSeconds: windowSeconds / 2, maxRequests: 5_000 });
        context.log(
          `  round ${round} ${side.name}: c=${context.connections} ${loaded.rps.toFixed(0)} req/s, ` +
            `c=1 p50 ${single.p50Ms.toFixed(3)} ms`,
        );
        perRequestMs.get(side.name)!.push(1000 / loaded.rps);
        p50Ms.get(side.name)!.push(single.p50Ms);
      }
    }
    const figure = 'runtime isolation';
    const ratio = (by: Map<string, number[]>) =>
      median(by.get('process')!.map((value, i) => value / by.get('threads')![i]!));
    const rows: Row[] = [];
    for (const side of sides) {
      rows.push(
        {
          figure,
          metric: `react, ${side.name}, c=${context.connections} req/s`,
          value: 1000 / median(perRequestMs.get(side.name)!),
          unit: 'req/s',
        },
        { figure, metric: `react, ${side.name}, c=1 p50`, value: median(p50Ms.get(side.name)!), unit: 'ms' },
      );
    }
    rows.push(
      {
        figure,
        metric: `process / threads, time per react at c=${context.connections}`,
        value: ratio(perRequestMs),
        unit: 'x',
        note: 'the second crossing under load (calls of one loop turn cross as one message)',
      },
      {
        figure,
        metric: 'process / threads, react p50 at c=1',
        value: ratio(p50Ms),
        unit: 'x',
        note: 'two more wake-ups of a sleeping process per call',
      },
    );
    return rows;
  },
};
