// `node --no-node-snapshot --import tsx bench/ab.ts [c50|c1] [rounds]`
//
// One variable, two gateways: A and B run side by side on one Postgres database (BENCH_DATABASE_URL, default the
// local server) and differ only in what AB_A_ENV / AB_B_ENV (JSON objects of environment variables) and
// AB_A_ARGS / AB_B_ARGS (JSON arrays of Node flags, after `npm start`'s own) give them. Rounds alternate which side
// goes first; each round drives `{ __typename }` (no key, as the trivial-query figure sends it) and `react` (one
// detokenized token) on each side, at 50 connections (milliseconds of wall time per request, 1 / throughput) or at
// concurrency 1 (p50). Prints every round, the medians, and the median of the per-round B/A ratios: on a shared
// two-core machine single rounds of one side wander by 20% or more, so only medians of many rounds mean anything.
// AB_A_SCRIPT runs A from another checkout instead (its src/main.ts through tsx, relative to this repository's root;
// B runs compiled, as `npm start` does), to compare two versions of the code; the migrations must be the same. This
// checkout's own src/main.ts against its compiled self read 0.96-0.97 (trivial) and 0.94-1.03 (`react`): the same. Not part of `npm run bench`. Examples, the young
// generation of the main thread, and the code of a base commit against this one:
//   AB_A_ARGS='["--max-semi-space-size=16"]' node --no-node-snapshot --import tsx bench/ab.ts c50 10
//   git worktree add /tmp/base <commit> && ln -s "$PWD/node_modules" /tmp/base/node_modules
//   AB_A_SCRIPT=../../tmp/base/src/main.ts node --no-node-snapshot --import tsx bench/ab.ts c1 10
// or, both sides compiled (`node scripts/build.mjs` in the base checkout first):
//   AB_A_SCRIPT=../../tmp/base/dist/src/main.js node --no-node-snapshot --import tsx bench/ab.ts c50 10
import { BENCH_KEYS, createBenchDatabase, startGateway } from './lib/gateway.ts';
import { loadGraphQL, median, sequentialLatency } from './lib/load.ts';
import { createBenchToken, createReactorOfCode, REACT_MUTATION, TRIVIAL_FORMULA } from './lib/seed.ts';

const [mode = 'c50', roundsArg = '8'] = process.argv.slice(2);
const rounds = Number(roundsArg);
const seconds = Number(process.env.DURATION ?? 2);

function side(name: 'A' | 'B') {
  return {
    env: JSON.parse(process.env[`AB_${name}_ENV`] ?? '{}') as Record<string, string>,
    nodeArgs: JSON.parse(process.env[`AB_${name}_ARGS`] ?? '[]') as string[],
  };
}

/** Milliseconds per request: wall time per request at 50 connections, or the p50 at concurrency 1. */
async function measure(load: Parameters<typeof loadGraphQL>[0]): Promise<number> {
  if (mode === 'c1') return (await sequentialLatency(load)).p50Ms;
  return 1000 / (await loadGraphQL(load)).rps;
}

const database = await createBenchDatabase(
  'postgres',
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
);
const servers: { stop(): Promise<void> }[] = [];
try {
  const a = await startGateway(database, { name: 'A', ...side('A'), script: process.env.AB_A_SCRIPT });
  servers.push(a);
  const b = await startGateway(database, {
    name: 'B',
    nodeArgs: side('B').nodeArgs,
    env: { ...(await database.anotherInstance({ runsJobs: true })), ...side('B').env },
  });
  servers.push(b);
  const reactorId = await createReactorOfCode(a.url, TRIVIAL_FORMULA);
  const token = await createBenchToken(a.url, 'ab');
  const operations = {
    trivial: { query: '{ __typename }', variables: {}, headers: {} },
    react: {
      query: REACT_MUTATION,
      variables: { id: reactorId, args: token.args },
      headers: { 'bt-api-key': BENCH_KEYS.private },
    },
  };
  // Warm-up of both sides (JIT, caches, sockets), not measured.
  for (const gateway of [a, b]) {
    for (const operation of Object.values(operations)) {
      await loadGraphQL({ url: gateway.url, ...operation, connections: 50, durationSeconds: seconds });
    }
  }
  const samples = new Map<string, number[]>();
  const record = (key: string, value: number) => {
    if (!samples.has(key)) samples.set(key, []);
    samples.get(key)!.push(value);
  };
  const sides = [['A', a] as const, ['B', b] as const];
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? sides : [...sides].reverse();
    const line: string[] = [];
    for (const [name, gateway] of order) {
      for (const [operation, load] of Object.entries(operations)) {
        const ms = await measure({ url: gateway.url, ...load, connections: 50, durationSeconds: seconds });
        record(`${name} ${operation}`, ms);
        line.push(`${name} ${operation} ${ms.toFixed(3)}`);
      }
    }
    for (const operation of Object.keys(operations)) {
      const ratio = samples.get(`B ${operation}`)!.at(-1)! / samples.get(`A ${operation}`)!.at(-1)!;
      record(`B/A ${operation}`, ratio);
    }
    console.log(`round ${round}: ${line.join(', ')} (ms per request)`);
  }
  console.log(`\n${mode}, ${rounds} rounds of ${seconds} s, medians:`);
  for (const [key, values] of samples) console.log(`  ${key.padEnd(12)} ${median(values).toFixed(3)}`);
} finally {
  for (const server of servers.reverse()) await server.stop().catch(() => {});
  await database.drop();
}
