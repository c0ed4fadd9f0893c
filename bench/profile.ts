// `node --no-node-snapshot --import tsx bench/profile.ts [pglite|postgres] [c1|c50] [operation...]`
//
// Where a figure's time goes: starts one gateway as the harness does, seeds a reactor and a token, and drives each
// operation (trivial, trivial-anonymous, react, react-no-token, list, create-token, token-by-id) alone for DURATION seconds (default 4), after a
// warm-up: p50 at concurrency 1, or throughput at 50 connections; either with the CPU the gateway spent per request,
// split by thread (main, piscina workers, V8 and libuv helpers). Profile the gateway with BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
// Postgres: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres). Not part of `npm run bench`.
import { readdirSync, readFileSync } from 'node:fs';
import { BENCH_KEYS, createBenchDatabase, startGateway } from './lib/gateway.ts';
import { loadGraphQL, sequentialLatency } from './lib/load.ts';
import { createBenchToken, createReactorOfCode, REACT_MUTATION, TRIVIAL_FORMULA } from './lib/seed.ts';

const [kind = 'pglite', mode = 'c50', ...wanted] = process.argv.slice(2);
const seconds = Number(process.env.DURATION ?? 4);

/** CPU ticks (1/100 s) of every thread of the gateway process. */
function gatewayThreadTicks(pid: number): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    ticks.set(`${tid} ${name}`, Number(fields[11]) + Number(fields[12]));
  }
  return ticks;
}

const database = await createBenchDatabase(
  kind as 'pglite' | 'postgres',
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
);
const gateway = await startGateway(database, { name: 'gateway' });
try {
  const url = gateway.url;
  const key = BENCH_KEYS.private;
  const reactorId = await createReactorOfCode(url, TRIVIAL_FORMULA);
  const token = await createBenchToken(url, 'profile');
  const operations = {
    trivial: { query: '{ __typename }', variables: {} },
    // As the trivial-query figure sends it: no key.
    'trivial-anonymous': { query: '{ __typename }', variables: {}, anonymous: true },
    react: { query: REACT_MUTATION, variables: { id: reactorId, args: token.args } },
    'react-no-token': { query: REACT_MUTATION, variables: { id: reactorId, args: { n: 1 } } },
    // A page of reactors with their formulas: the dataloader path (Pothos' per-request loaders).
    list: { query: '{ reactors(first: 20) { edges { node { id name formula { id name } } } } }', variables: {} },
    // A write: one token sealed and inserted (with its fingerprint), then read back as the answer.
    'create-token': {
      query: 'mutation ($input: CreateTokenInput!) { createToken(input: $input) { __typename ... on Token { id } } }',
      variables: { input: { type: 'TOKEN', data: { secret: 'profile' } } },
    },
    'token-by-id': { query: 'query ($id: UUID!) { token(id: $id) { id type } }', variables: { id: token.id } },
  };
  for (const [name, operation] of Object.entries(operations)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    const { anonymous, ...request } = { anonymous: false, ...operation };
    const headers: Record<string, string> = anonymous ? {} : { 'bt-api-key': key };
    const load = { url, ...request, headers };
    // Warm-up (JIT, caches, keep-alive sockets), not measured: without it the first operation pays for all of that.
    await loadGraphQL({ ...load, connections: 50, durationSeconds: Math.min(2, seconds) });
    const before = gatewayThreadTicks(gateway.pid);
    const started = performance.now();
    const result: { requests: number; p50Ms: number; rps?: number } =
      mode === 'c1'
        ? await sequentialLatency({ ...load, durationSeconds: seconds, maxRequests: 100_000 })
        : await loadGraphQL({ ...load, connections: 50, durationSeconds: seconds });
    const elapsed = (performance.now() - started) / 1000;
    const after = gatewayThreadTicks(gateway.pid);
    const requests = result.requests;
    const perThread = [...after].map(([thread, t]) => [thread, t - (before.get(thread) ?? t)] as const);
    const total = perThread.reduce((sum, [, t]) => sum + t, 0);
    const figure =
      result.rps === undefined ? `c=1 p50 ${result.p50Ms.toFixed(3)} ms` : `c=50 ${result.rps.toFixed(0)} req/s`;
    console.log(
      `${name}: ${figure}, gateway CPU ${((total * 1e4) / requests).toFixed(0)} us/request, ${requests} requests in ${elapsed.toFixed(1)} s`,
    );
    for (const [thread, t] of perThread.filter(([, t]) => t > 0).sort((a, b) => b[1] - a[1])) {
      console.log(
        `  ${thread}: ${((t * 1e4) / requests).toFixed(1)} us/request (${(t / elapsed).toFixed(0)}% of a core)`,
      );
    }
  }
} finally {
  await gateway.stop();
  await database.drop();
}
