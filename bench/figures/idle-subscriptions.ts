import type { Client } from 'graphql-ws';
import { BENCH_KEYS, gql, startGateway } from '../lib/gateway.ts';
import { median } from '../lib/load.ts';
import { freePort, type ServerProcess } from '../lib/processes.ts';
import { createReactorOfCode, hasRootField, TRIVIAL_FORMULA } from '../lib/seed.ts';
import { boundedAll, connectedClient, heapAfterGc, rssKb, sleep } from '../lib/ws.ts';
import { type BenchContext, checked, type Figure, type Row } from './types.ts';

const SUBSCRIPTION = 'subscription { reactorEvents { type } }';
const REACT_ASYNC = `mutation ($id: UUID!) { reactAsync(id: $id) { __typename ... on Error { code message } } }`;
/** Subscriptions are multiplexed over this many sockets, so the per-subscription figure is not a per-socket one. */
const CONNECTIONS = 100;
const STEPS = [1_000, 10_000];
/** Extra sockets with one subscription each, opened last: the cost of a connection. */
const EXTRA_CONNECTIONS = 1_000;
const REPETITIONS = 2;
/** --quick: one repetition (at 10,000 the figure moved by at most 0.05 KB between repetitions in every run so far). */
const QUICK_REPETITIONS = 1;

/**
 * How long to let the gateway settle before each forced GC, and how often to queue another confirming invocation
 * while some subscriptions have not seen one. --quick: shorter, since the sample follows a forced full GC anyway
 * (the settle only lets in-flight frames finish); its six samples and the 3 s re-invocations were most of its 12 s.
 */
interface Pacing {
  settleMs: number;
  reinvokeMs: number;
}
const PACING: Pacing = { settleMs: 6_000, reinvokeMs: 3_000 };
const QUICK_PACING: Pacing = { settleMs: 300, reinvokeMs: 1_000 };

/**
 * Memory of idle graphql-ws subscriptions on a gateway process that serves nothing else: after warm-up, after
 * opening 100 sockets, after 1,000 and after 10,000 `reactorEvents` subscriptions over them, then 1,000 more
 * sockets with one subscription each.
 * Two readings per point. The V8 heap (heapUsed) after a forced full GC, through the inspector (the dedicated
 * gateway runs with --inspect on 127.0.0.1): the target is judged on it. VmRSS from /proc, read right after that
 * GC: reported next to it. RSS read without the forced GC was useless here: a PGlite gateway sits at 500-900 MB
 * (PGlite's WASM memory, the isolate pool) and uncollected garbage swung it by 100+ MB (a first version of this
 * figure got +27 and -13 KB per subscription in two runs); after the GC, RSS and heap deltas agree within ~1 KB.
 * graphql-ws has no per-subscription ack, so after each step one `reactAsync` is queued: every subscription must
 * receive its `reactor.invoked` and `reactor.completed` events, which proves all are registered, before settling.
 * Each repetition gets a fresh gateway (a process that has freed memory reuses it); medians of the repetitions.
 */
const dedicated: Promise<{ gateway: ServerProcess; inspectorPort: number }>[] = [];

export const idleSubscriptions: Figure = {
  name: 'idle graphql-ws subscriptions memory',
  available: async (context) =>
    (process.platform === 'linux' && (await hasRootField(context.gateway.url, 'Subscription', 'reactorEvents'))) ||
    'needs Linux (/proc) and the reactorEvents subscription',
  async prepare(context) {
    // Started while the main gateway starts (PGlite spends its start-up in initdb); each has its own database.
    for (let i = 0; i < (context.quick ? QUICK_REPETITIONS : REPETITIONS); i++) {
      dedicated.push(
        (async () => {
          const inspectorPort = await freePort();
          const database = await context.database;
          const env = {
            ...(await database.anotherInstance()),
            NODE_OPTIONS: `--inspect=127.0.0.1:${inspectorPort}`,
          };
          const gateway = context.track(
            await startGateway(database, { name: `gateway (subscriptions ${i + 1})`, env }),
          );
          return { gateway, inspectorPort };
        })(),
      );
    }
    // The harness awaits prepare; a failed start surfaces in run(), where it fails this figure only.
    await Promise.allSettled(dedicated);
  },
  async run(context: BenchContext): Promise<Row[]> {
    if (dedicated.length === 0) throw new Error('prepare() did not run');
    const pacing = context.quick ? QUICK_PACING : PACING;
    const results: Repetition[] = [];
    for (const [i, started] of dedicated.splice(0).entries()) {
      const { gateway, inspectorPort } = await started;
      try {
        const r = await measure(gateway, inspectorPort, pacing, context.log);
        context.log(
          `  repetition ${i + 1}: baseline heap ${(r.baseline.heapUsedKb / 1024).toFixed(1)} MB, RSS ` +
            `${(r.baseline.rssKb / 1024).toFixed(0)} MB; per subscription (heap/RSS KB) ` +
            STEPS.map(
              (n, s) =>
                `at ${n} ${r.perSubscription[s]!.heapUsedKb.toFixed(2)}/${r.perSubscription[s]!.rssKb.toFixed(1)}`,
            ).join(', ') +
            `; per socket with 1 subscription ${r.perSocket.heapUsedKb.toFixed(2)}/${r.perSocket.rssKb.toFixed(1)}`,
        );
        results.push(r);
      } finally {
        // Dedicated: stopped as soon as it has served its repetition.
        await gateway.stop();
      }
    }
    const figure = 'idle subscriptions';
    const row = (metric: string, pick: (r: Repetition) => number, unit = 'KB'): Row => ({
      figure,
      metric,
      value: median(results.map(pick)),
      unit,
      note: `runs ${results.map((r) => pick(r).toFixed(2)).join(', ')}`,
    });
    return [
      ...STEPS.flatMap((n, s) => {
        const at = `at ${n.toLocaleString('en-US')} (${CONNECTIONS} sockets)`;
        return [
          checked(
            { ...row(`heap KB per subscription ${at}`, (r) => r.perSubscription[s]!.heapUsedKb), target: '< 5 KB' },
            (v) => v < 5,
          ),
          row(`RSS KB per subscription ${at}`, (r) => r.perSubscription[s]!.rssKb),
        ];
      }),
      row(
        `heap KB per socket with 1 subscription (${EXTRA_CONNECTIONS.toLocaleString('en-US')})`,
        (r) => r.perSocket.heapUsedKb,
      ),
      row(
        `RSS KB per socket with 1 subscription (${EXTRA_CONNECTIONS.toLocaleString('en-US')})`,
        (r) => r.perSocket.rssKb,
      ),
      row('heap after warm-up (after GC)', (r) => r.baseline.heapUsedKb / 1024, 'MB'),
      row('RSS after warm-up', (r) => r.baseline.rssKb / 1024, 'MB'),
    ];
  },
};

interface Sample {
  heapUsedKb: number;
  externalKb: number;
  rssKb: number;
}

interface Repetition {
  baseline: Sample;
  perSubscription: Sample[];
  perSocket: Sample;
}

interface Subscriber {
  events: number;
  error?: unknown;
}

const perUnit = (after: Sample, before: Sample, count: number): Sample => ({
  heapUsedKb: (after.heapUsedKb - before.heapUsedKb) / count,
  externalKb: (after.externalKb - before.externalKb) / count,
  rssKb: (after.rssKb - before.rssKb) / count,
});

async function measure(
  gateway: ServerProcess,
  inspectorPort: number,
  pacing: Pacing,
  log: (m: string) => void,
): Promise<Repetition> {
  const clients: Client[] = [];
  const subscribers: Subscriber[] = [];
  const reactorId = await createReactorOfCode(gateway.url, TRIVIAL_FORMULA);
  const subscribe = (client: Client) => {
    const subscriber: Subscriber = { events: 0 };
    subscribers.push(subscriber);
    client.subscribe(
      { query: SUBSCRIPTION },
      {
        next: () => {
          subscriber.events++;
        },
        error: (error) => {
          subscriber.error = error;
        },
        complete: () => {},
      },
    );
  };
  const open = (count: number) =>
    boundedAll(count, 20, async () => {
      // reactorEvents needs reactor:read: the management key's (a default private key does not hold it).
      clients.push(await connectedClient(gateway.url, BENCH_KEYS.management));
    });
  // Every subscription must see two events (an invocation's invoked and completed) after this point. graphql-ws
  // does not acknowledge a subscribe, so one sent just before the invocation may be registered only after its
  // `invoked` event: such a subscription is confirmed by the next invocation, queued every few seconds.
  const confirm = async () => {
    const before = subscribers.map((s) => s.events);
    const deadline = Date.now() + 120_000;
    let nextInvocation = 0;
    while (subscribers.some((s, i) => s.events < before[i]! + 2)) {
      const failed = subscribers.find((s) => s.error);
      if (failed) throw new Error(`subscription failed: ${JSON.stringify(failed.error)}`);
      if (Date.now() > deadline) {
        const behind = subscribers.filter((s, i) => s.events < before[i]! + 2).length;
        throw new Error(`${behind}/${subscribers.length} subscriptions did not receive the confirming events`);
      }
      if (Date.now() >= nextInvocation) {
        await gql(gateway.url, REACT_ASYNC, { id: reactorId }, BENCH_KEYS.private);
        nextInvocation = Date.now() + pacing.reinvokeMs;
      }
      await sleep(50);
    }
  };
  // Settle, force a full GC, then read heap and RSS (RSS after the GC, so garbage does not count there either).
  const sample = async (): Promise<Sample> => {
    await sleep(pacing.settleMs);
    const heap = await heapAfterGc(inspectorPort);
    return { heapUsedKb: heap.heapUsedKb, externalKb: heap.externalKb, rssKb: await rssKb(gateway.pid) };
  };
  try {
    // Warm-up: the WebSocket server, graphql-ws, the subscription path, the runner and its isolate have all been
    // used once (lazily loaded code and first-use caches are not per-subscription costs); then closed again.
    await open(10);
    for (const client of clients) for (let i = 0; i < 10; i++) subscribe(client);
    await confirm();
    for (const client of clients.splice(0)) await client.dispose();
    subscribers.length = 0;
    const baseline = await sample();

    await open(CONNECTIONS);
    const connected = await sample();
    const perSubscription: Sample[] = [];
    // The last step's sample is also the state before the extra sockets: nothing happens in between.
    let beforeExtra = connected;
    for (const target of STEPS) {
      for (let i = subscribers.length; i < target; i++) subscribe(clients[i % CONNECTIONS]!);
      await confirm();
      beforeExtra = await sample();
      perSubscription.push(perUnit(beforeExtra, connected, target));
      log(`  ${target} subscriptions confirmed`);
    }
    const multiplexed = clients.length;
    await open(EXTRA_CONNECTIONS);
    for (const client of clients.slice(multiplexed)) subscribe(client);
    await confirm();
    return { baseline, perSubscription, perSocket: perUnit(await sample(), beforeExtra, EXTRA_CONNECTIONS) };
  } finally {
    await Promise.allSettled(clients.map((client) => client.dispose()));
  }
}
