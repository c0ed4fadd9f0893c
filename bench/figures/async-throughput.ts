import type { Client } from 'graphql-ws';
import { BENCH_KEYS, gql, startGateway, withClient } from '../lib/gateway.ts';
import type { ServerProcess } from '../lib/processes.ts';
import { createReactorOfCode, hasRootField, TRIVIAL_FORMULA } from '../lib/seed.ts';
import { boundedAll, connectedClient } from '../lib/ws.ts';
import type { BenchContext, Figure, Row } from './types.ts';

const REACT_ASYNC = `mutation ($id: UUID!) { reactAsync(id: $id, args: { n: 1 }) {
  __typename ... on AsyncReactorRequest { asyncReactorRequestId } ... on Error { code message } } }`;
const EVENTS = 'subscription ($reactorId: UUID) { reactorEvents(reactorId: $reactorId) { type request { id } } }';
/** HTTP calls in flight while queueing: enough to keep both instances busy, few enough not to measure autocannon. */
const QUEUE_CONCURRENCY = 20;
const WARM_UP_JOBS = 20;

/**
 * Async job throughput with one gateway instance and with two on the same Postgres database (how the gateway
 * scales out: every instance's runner claims from the one table with SKIP LOCKED). N `reactAsync` calls of a trivial
 * formula are queued (round robin over the instances, 20 HTTP calls in flight) and the clock runs from the first
 * call until a `reactorEvents` subscriber on the main gateway has seen every one of them completed or failed (events
 * from every instance reach every instance through NOTIFY). So jobs/s includes queueing: it is the rate a client
 * gets end to end, not the runner alone; the queueing time is reported next to it.
 * One instance is measured first: a second instance's runner cannot be switched off from outside, so the second
 * gateway is started only for the two-instance measurement and stopped right after it.
 */
export const asyncThroughput: Figure = {
  name: 'async jobs/s with 2 instances',
  async available(context) {
    if (context.database.kind !== 'postgres' || !context.database.url) {
      return 'needs BENCH_DATABASE_URL: two processes cannot share a PGlite directory';
    }
    return (
      ((await hasRootField(context.gateway.url, 'Mutation', 'reactAsync')) &&
        (await hasRootField(context.gateway.url, 'Subscription', 'reactorEvents'))) ||
      'no reactAsync / reactorEvents subscription yet'
    );
  },
  async run(context: BenchContext): Promise<Row[]> {
    const dbUrl = context.database.url!;
    const jobs = context.quick ? 200 : 2_000;
    const reactorId = await createReactorOfCode(context.gateway.url, TRIVIAL_FORMULA);
    const names = new Map([[context.gateway.pid, 'gateway']]);

    const one = await measure(context, [context.gateway], reactorId, jobs, dbUrl, names);
    const second = context.track(
      await startGateway(context.database, {
        name: 'gateway 2',
        env: await context.database.anotherInstance({ runsJobs: true }),
      }),
    );
    names.set(second.pid, 'gateway 2');
    let two: Measurement;
    try {
      two = await measure(context, [context.gateway, second], reactorId, jobs, dbUrl, names);
    } finally {
      // Stopped here, not only at the end of the run: its runner would otherwise claim later figures' jobs.
      await second.stop();
    }

    const figure = 'async jobs/s';
    const row = (metric: string, m: Measurement): Row => ({
      figure,
      metric,
      value: m.jobsPerSecond,
      unit: '/s',
      note:
        `${jobs} jobs in ${(m.totalMs / 1000).toFixed(2)} s (queued in ${(m.queueMs / 1000).toFixed(2)} s); ` +
        `runner span ${m.runnerSpanMs.toFixed(0)} ms; split ${m.split}${m.failed ? `; ${m.failed} FAILED` : ''}`,
    });
    return [
      row('1 instance', one),
      row('2 instances', two),
      { figure, metric: '2 instances / 1 instance', value: two.jobsPerSecond / one.jobsPerSecond, unit: 'x' },
    ];
  },
};

interface Measurement {
  jobsPerSecond: number;
  totalMs: number;
  queueMs: number;
  /** first created_at to last completed_at as the database recorded them: the runners' side, without delivery. */
  runnerSpanMs: number;
  /** Jobs per runner ("gateway 1234, gateway 2 987"), from reactor_requests.runner_id (`<pid>-<uuid>`). */
  split: string;
  failed: number;
}

async function measure(
  context: BenchContext,
  instances: ServerProcess[],
  reactorId: string,
  jobs: number,
  dbUrl: string,
  names: Map<number, string>,
): Promise<Measurement> {
  const done = new Set<string>();
  let failed = 0;
  let check: (() => void) | undefined;
  // reactorEvents needs reactor:read, which the management key holds and a default private key does not.
  const watcher = await connectedClient(context.gateway.url, BENCH_KEYS.management);
  try {
    const stop = watchEvents(watcher, reactorId, (type, id) => {
      if (done.has(id)) return;
      done.add(id);
      if (type === 'reactor.failed') failed++;
      check?.();
    });
    try {
      // Warm-up through every instance (isolates, caches, the subscription itself): not measured. Waiting for their
      // completions also proves the subscription is live before the clock starts.
      const warm = await queue(instances, reactorId, WARM_UP_JOBS);
      await untilDone(warm, done, (f) => (check = f), 60_000, dbUrl);
      failed = 0;

      const started = performance.now();
      const ids = await queue(instances, reactorId, jobs);
      const queueMs = performance.now() - started;
      await untilDone(ids, done, (f) => (check = f), 120_000 + jobs * 100, dbUrl);
      const totalMs = performance.now() - started;

      const stats = await withClient(dbUrl, async (client) => {
        const span = await client.query<{ ms: number }>(
          `select extract(epoch from max(completed_at) - min(created_at)) * 1000 as ms
             from reactor_requests where id = any($1::uuid[])`,
          [ids],
        );
        const runners = await client.query<{ runner_id: string | null; count: string }>(
          `select runner_id, count(*) from reactor_requests where id = any($1::uuid[]) group by runner_id order by 2 desc`,
          [ids],
        );
        return { spanMs: Number(span.rows[0]?.ms), runners: runners.rows };
      });
      const split = stats.runners
        .map((r) => `${names.get(Number(r.runner_id?.split('-')[0])) ?? r.runner_id ?? 'unclaimed'} ${r.count}`)
        .join(', ');
      const result = {
        jobsPerSecond: (jobs * 1000) / totalMs,
        totalMs,
        queueMs,
        runnerSpanMs: stats.spanMs,
        split,
        failed,
      };
      context.log(
        `  ${instances.length} instance(s): ${result.jobsPerSecond.toFixed(0)} jobs/s, ${jobs} in ${totalMs.toFixed(0)} ms ` +
          `(queued in ${queueMs.toFixed(0)} ms, runner span ${stats.spanMs.toFixed(0)} ms), split ${split}`,
      );
      return result;
    } finally {
      stop();
    }
  } finally {
    await watcher.dispose();
  }
}

/** Queues `count` invocations round robin over the instances, QUEUE_CONCURRENCY calls in flight; returns the ids. */
async function queue(instances: ServerProcess[], reactorId: string, count: number): Promise<string[]> {
  const ids: string[] = new Array(count);
  await boundedAll(count, QUEUE_CONCURRENCY, async (i) => {
    const instance = instances[i % instances.length]!;
    const data = await gql<any>(instance.url, REACT_ASYNC, { id: reactorId }, BENCH_KEYS.private);
    const id = data.reactAsync.asyncReactorRequestId;
    if (!id) throw new Error(`reactAsync answered ${JSON.stringify(data.reactAsync)}`);
    ids[i] = id;
  });
  return ids;
}

function watchEvents(client: Client, reactorId: string, onFinished: (type: string, requestId: string) => void) {
  return client.subscribe<{ reactorEvents: { type: string; request: { id: string } } }>(
    { query: EVENTS, variables: { reactorId } },
    {
      next: (message) => {
        const event = message.data?.reactorEvents;
        if (event && (event.type === 'reactor.completed' || event.type === 'reactor.failed')) {
          onFinished(event.type, event.request.id);
        }
      },
      error: () => {},
      complete: () => {},
    },
  );
}

/**
 * Resolves once every id has been seen finished. A job can finish before its reactAsync answer reaches us, so the
 * set of finished ids is filled independently of the queueing. Bounded: on timeout it fails with what the database
 * says (so a lost event and a stuck job are told apart).
 */
async function untilDone(
  ids: string[],
  done: Set<string>,
  onEvent: (check: () => void) => void,
  timeoutMs: number,
  dbUrl: string,
): Promise<void> {
  const all = () => ids.every((id) => done.has(id));
  const finished = new Promise<boolean>((resolve) => {
    onEvent(() => {
      if (all()) resolve(true);
    });
    if (all()) resolve(true);
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  // The timer is cleared either way: a pending one would keep the harness alive after its last figure.
  const ok = await Promise.race([finished, timedOut]).finally(() => clearTimeout(timer));
  if (ok) return;
  const counts = await withClient(dbUrl, (client) =>
    client.query(`select status, count(*) from reactor_requests where id = any($1::uuid[]) group by status`, [ids]),
  );
  const seen = ids.filter((id) => done.has(id)).length;
  throw new Error(
    `after ${timeoutMs} ms: ${seen}/${ids.length} finished events; database: ${JSON.stringify(counts.rows)}`,
  );
}
