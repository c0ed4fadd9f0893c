import { BENCH_KEYS, gql } from '../lib/gateway.ts';
import { type LoadResult, loadGraphQL, median, medianOf, sequentialLatency } from '../lib/load.ts';
import { cpuSeconds } from '../lib/processes.ts';
import { createBenchToken, createReactorOfCode, hasRootField, REACT_MUTATION, TRIVIAL_FORMULA } from '../lib/seed.ts';
import { type BenchContext, checked, type Figure, type Row, windowedRounds } from './types.ts';

const TRIVIAL = '{ __typename }';

/**
 * `react` on a formula that returns at once, against `{ __typename }` on the same gateway: what the invocation path
 * (auth, reactor + formula load, detokenize, validate, pool + isolate, tokenize) costs over a bare request.
 * Throughput at the harness's concurrency (target ≥ 0.6) and p50 at concurrency 1 (target ≤ 2x). One detokenized
 * token per call, as issue 7 asks: `{{ token-id }}` in the args, read and decrypted on every react.
 */
export const react: Figure = {
  name: 'react vs trivial query',
  available: async (context) =>
    (await hasRootField(context.gateway.url, 'Mutation', 'react')) || 'no react mutation yet',
  async run(context: BenchContext): Promise<Row[]> {
    const url = context.gateway.url;
    const reactorId = await createReactorOfCode(url, TRIVIAL_FORMULA);
    const key = BENCH_KEYS.private;
    const token = await createBenchToken(url, 'bench-secret-value');
    const variables = { id: reactorId, args: token.args };
    const check = await gql<any>(url, REACT_MUTATION, variables, key);
    if (check.react.__typename !== 'ReactorResponse') throw new Error(`react answered ${JSON.stringify(check.react)}`);

    const contenders = [
      { name: 'trivial', query: TRIVIAL, variables: {} },
      { name: 'react', query: REACT_MUTATION, variables },
    ];
    // Each round in the other order (trivial-react, then react-trivial); see windowedRounds.
    const { rounds, windowSeconds } = windowedRounds(context);
    const inRoundOrder = (round: number) => (round % 2 === 1 ? contenders : [...contenders].reverse());
    const headers = { 'bt-api-key': key };
    const pid = context.gateway.pid;
    // CPU per request, all threads and the main thread alone: steadier than throughput on this machine (it leaves
    // out the time spent waiting for a core), so a change in the code can be told from a change in the machine.
    const cpu = new Map(contenders.map((c) => [c.name, { all: [] as number[], main: [] as number[] }]));
    const measure = async (connections: number) => {
      const results = new Map<string, LoadResult[]>(contenders.map((c) => [c.name, []]));
      // Warm-up (JIT of three threads and of the isolate, caches, keep-alive sockets), not measured. With 1 s the
      // first rounds of `react` still came out 0.45-0.55 against 0.6-0.67 later in the same run.
      for (const contender of contenders) {
        await loadGraphQL({ ...contender, url, headers, connections, durationSeconds: context.quick ? 0.5 : 3 });
      }
      for (let round = 1; round <= rounds; round++) {
        for (const contender of inRoundOrder(round)) {
          const before = [await cpuSeconds(pid), await cpuSeconds(pid, pid)];
          const result = await loadGraphQL({ ...contender, url, headers, connections, durationSeconds: windowSeconds });
          const after = [await cpuSeconds(pid), await cpuSeconds(pid, pid)];
          const perRequest = (i: number) =>
            before[i] === undefined || after[i] === undefined
              ? Number.NaN
              : (((after[i] as number) - (before[i] as number)) * 1e6) / result.requests;
          context.log(
            `  c=${connections} round ${round} ${contender.name}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50Ms} ms, ` +
              `CPU ${perRequest(0).toFixed(0)} µs/request (main thread ${perRequest(1).toFixed(0)})`,
          );
          results.get(contender.name)!.push(result);
          cpu.get(contender.name)!.all.push(perRequest(0));
          cpu.get(contender.name)!.main.push(perRequest(1));
        }
      }
      return results;
    };

    const figure = 'react';
    const loaded = await measure(context.connections);
    // Concurrency 1, timed per request (autocannon's whole milliseconds cannot resolve a sub-millisecond p50).
    const single = new Map<string, { p50Ms: number; p99Ms: number; failures: number }[]>(
      contenders.map((c) => [c.name, []]),
    );
    for (let round = 1; round <= rounds; round++) {
      for (const contender of inRoundOrder(round)) {
        const result = await sequentialLatency({
          ...contender,
          url,
          headers,
          durationSeconds: windowSeconds / 2,
          maxRequests: 5_000,
        });
        context.log(
          `  c=1 round ${round} ${contender.name}: p50 ${result.p50Ms.toFixed(2)} ms (${result.requests} requests)`,
        );
        single.get(contender.name)!.push(result);
      }
    }
    const rows: Row[] = [];
    for (const contender of contenders) {
      const m = medianOf(loaded.get(contender.name)!);
      const note = m.failures ? `${m.failures} failed requests` : undefined;
      rows.push({
        figure,
        metric: `${contender.name} c=${context.connections} req/s`,
        value: m.rps,
        unit: 'req/s',
        note,
      });
      rows.push({ figure, metric: `${contender.name} c=${context.connections} p50`, value: m.p50Ms, unit: 'ms' });
      rows.push({ figure, metric: `${contender.name} c=${context.connections} p99`, value: m.p99Ms, unit: 'ms' });
      const used = cpu.get(contender.name)!;
      rows.push({
        figure,
        metric: `${contender.name} c=${context.connections} CPU per request`,
        value: median(used.all),
        unit: 'µs',
      });
      rows.push({
        figure,
        metric: `${contender.name} c=${context.connections} main-thread CPU per request`,
        value: median(used.main),
        unit: 'µs',
      });
      const one = single.get(contender.name)!;
      rows.push({ figure, metric: `${contender.name} c=1 p50`, value: median(one.map((r) => r.p50Ms)), unit: 'ms' });
      rows.push({ figure, metric: `${contender.name} c=1 p99`, value: median(one.map((r) => r.p99Ms)), unit: 'ms' });
    }
    const ratio = <T>(results: Map<string, T[]>, pick: (r: T) => number) =>
      median(results.get('react')!.map((r, i) => pick(r) / pick(results.get('trivial')![i]!)));
    const mainCpu = (name: string) => median(cpu.get(name)!.main);
    rows.push(
      {
        figure,
        metric: 'trivial / react main-thread CPU per request',
        value: mainCpu('trivial') / mainCpu('react'),
        unit: 'x',
        note: 'the throughput ratio where the main thread is the only bottleneck (cores to spare)',
      },
      checked(
        {
          figure,
          metric: 'react / trivial throughput',
          value: ratio(loaded, (r) => r.rps),
          unit: 'x',
          target: '≥ 0.6',
        },
        (v) => v >= 0.6,
      ),
      checked(
        {
          figure,
          metric: 'react / trivial p50 at c=1',
          value: ratio(single, (r) => r.p50Ms),
          unit: 'x',
          target: '≤ 2',
        },
        (v) => v <= 2,
      ),
    );
    return rows;
  },
};
