import { startGateway } from '../lib/gateway.ts';
import { type LoadResult, loadGraphQL, median, medianOf } from '../lib/load.ts';
import { cpuSeconds, freePort, type ServerProcess, startProcess } from '../lib/processes.ts';
import { type BenchContext, checked, type Figure, type Row, windowedRounds } from './types.ts';

/**
 * `{ __typename }` on the gateway (fast path), the same gateway through Yoga's own handler (before the fast path),
 * and Mercurius `{ hello }`: each in its own process, same autocannon settings, rounds interleaved so the noise of
 * a shared machine falls on all three alike (windowedRounds); medians of the per-round ratios. The Yoga handler
 * is a reference without a target, measured in full runs only: in `--quick` its gateway start and its rounds were
 * 6-7 of 81 s here.
 */
let yogaOnly: ServerProcess | undefined;
let mercurius: ServerProcess | undefined;

export const trivialQuery: Figure = {
  name: 'trivial query vs Mercurius',
  available: async () => true,
  async prepare(context) {
    [mercurius, yogaOnly] = await Promise.all([
      freePort()
        .then((port) =>
          startProcess({ name: 'mercurius', script: 'bench/servers/mercurius.ts', port, readyPath: '/health' }),
        )
        .then((server) => context.track(server)),
      context.quick
        ? undefined
        : context.database
            .then(async (database) =>
              startGateway(database, {
                name: 'gateway (Yoga handler)',
                script: 'bench/servers/yoga-only.ts',
                env: await database.anotherInstance(),
              }),
            )
            .then((server) => context.track(server)),
    ]);
  },
  async run(context: BenchContext): Promise<Row[]> {
    if (!mercurius || (!yogaOnly && !context.quick)) throw new Error('prepare() did not run');
    const contenders = [
      { name: 'gateway', url: context.gateway.url, pid: context.gateway.pid, query: '{ __typename }' },
      ...(yogaOnly
        ? [{ name: 'gateway-yoga-handler', url: yogaOnly.url, pid: yogaOnly.pid, query: '{ __typename }' }]
        : []),
      { name: 'mercurius', url: mercurius.url, pid: mercurius.pid, query: '{ hello }' },
    ];
    const results = new Map<string, LoadResult[]>(contenders.map((c) => [c.name, []]));
    const cpuPerRequest = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    for (const contender of contenders) {
      // Warm-up: JIT, lazily loaded modules, caches and keep-alive sockets, not measured.
      await loadGraphQL({ ...contender, connections: context.connections, durationSeconds: context.quick ? 0.5 : 3 });
    }
    const { rounds, windowSeconds } = windowedRounds(context);
    for (let round = 1; round <= rounds; round++) {
      // Each round starts with a different contender, so no one always runs first (or always after the same one).
      const order = contenders.map((_, i) => contenders[(i + round - 1) % contenders.length]!);
      for (const contender of order) {
        const cpuBefore = await cpuSeconds(contender.pid);
        const result = await loadGraphQL({
          ...contender,
          connections: context.connections,
          durationSeconds: windowSeconds,
        });
        const cpuAfter = await cpuSeconds(contender.pid);
        const cpuUs =
          cpuBefore === undefined || cpuAfter === undefined
            ? Number.NaN
            : ((cpuAfter - cpuBefore) * 1e6) / result.requests;
        context.log(
          `  round ${round} ${contender.name}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, ${cpuUs.toFixed(0)} µs CPU/request`,
        );
        results.get(contender.name)!.push(result);
        cpuPerRequest.get(contender.name)!.push(cpuUs);
      }
    }
    // Ratios per round (the three ran within seconds of each other), then the median: steadier than a ratio of
    // medians when the machine's load shifts between rounds.
    const perRound = (a: string, b: string) =>
      median(results.get(a)!.map((result, i) => result.rps / results.get(b)![i]!.rps));
    const measured = (name: string) => (results.has(name) ? medianOf(results.get(name)!) : undefined);
    const yogaHandler = results.has('gateway-yoga-handler');
    const figure = 'trivial query';
    const rows: Row[] = [];
    for (const [name, result] of [
      ['gateway { __typename } (fast path)', measured('gateway')],
      ['gateway { __typename } (Yoga handler)', measured('gateway-yoga-handler')],
      ['mercurius { hello }', measured('mercurius')],
    ] as const) {
      if (!result) continue;
      const note = result.failures ? `${result.failures} failed requests` : undefined;
      rows.push({ figure, metric: `${name} req/s`, value: result.rps, unit: 'req/s', note });
      rows.push({ figure, metric: `${name} p50`, value: result.p50Ms, unit: 'ms' });
      rows.push({ figure, metric: `${name} p99`, value: result.p99Ms, unit: 'ms' });
    }
    const cpu = (name: string) => median(cpuPerRequest.get(name)!);
    rows.push(
      { figure, metric: 'gateway (fast path) CPU per request', value: cpu('gateway'), unit: 'µs' },
      ...(yogaHandler
        ? [{ figure, metric: 'gateway (Yoga handler) CPU per request', value: cpu('gateway-yoga-handler'), unit: 'µs' }]
        : []),
      { figure, metric: 'mercurius CPU per request', value: cpu('mercurius'), unit: 'µs' },
    );
    rows.push(
      checked(
        {
          figure,
          metric: 'gateway / mercurius throughput',
          value: perRound('gateway', 'mercurius'),
          unit: 'x',
          target: '≥ 0.8',
        },
        (v) => v >= 0.8,
      ),
      checked(
        {
          figure,
          metric: 'mercurius / gateway CPU per request',
          value: cpu('mercurius') / cpu('gateway'),
          unit: 'x',
          target: '≥ 0.8',
          note: 'throughput ratio expected on an idle machine',
        },
        (v) => v >= 0.8,
      ),
    );
    if (yogaHandler) {
      rows.push(
        {
          figure,
          metric: 'Yoga handler / mercurius throughput',
          value: perRound('gateway-yoga-handler', 'mercurius'),
          unit: 'x',
        },
        {
          figure,
          metric: 'fast path / Yoga handler throughput',
          value: perRound('gateway', 'gateway-yoga-handler'),
          unit: 'x',
        },
      );
    }
    return rows;
  },
};
