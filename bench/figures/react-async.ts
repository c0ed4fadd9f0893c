import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { BENCH_KEYS, gql } from '../lib/gateway.ts';
import { median } from '../lib/load.ts';
import { createReactorOfCode, hasRootField, TRIVIAL_FORMULA } from '../lib/seed.ts';
import { type BenchContext, checked, type Figure, type Row } from './types.ts';

const REACT_ASYNC = `mutation ($id: UUID!) { reactAsync(id: $id, args: { n: 1 }) {
  __typename ... on AsyncReactorRequest { asyncReactorRequestId } ... on Error { code message } } }`;
const RESULT = `subscription ($requestId: UUID!) { reactorResult(requestId: $requestId) { status startedAt completedAt } }`;

/**
 * `reactAsync` until a graphql-ws subscriber sees COMPLETED, minus the formula's own run time (completedAt -
 * startedAt as the gateway records it): queueing, claiming, events and delivery. One invocation at a time, a
 * bounded number of them. The subscription starts right after the mutation answers; one that starts after the
 * terminal state still gets it first (the subscription emits the current state first), so no completion is missed.
 */
export const reactAsync: Figure = {
  name: 'reactAsync to COMPLETED over graphql-ws',
  available: async (context) =>
    ((await hasRootField(context.gateway.url, 'Mutation', 'reactAsync')) &&
      (await hasRootField(context.gateway.url, 'Subscription', 'reactorResult'))) ||
    'no reactAsync / reactorResult subscription yet',
  async run(context: BenchContext): Promise<Row[]> {
    const url = context.gateway.url;
    const reactorId = await createReactorOfCode(url, TRIVIAL_FORMULA);
    const client = createClient({
      url: url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { apiKey: BENCH_KEYS.private },
      lazy: false,
      retryAttempts: 0,
    });
    const beyondFormula: number[] = [];
    const total: number[] = [];
    const invocations = context.quick ? 20 : 100;
    try {
      for (let i = 0; i < invocations; i++) {
        const started = performance.now();
        const queued = await gql<any>(url, REACT_ASYNC, { id: reactorId }, BENCH_KEYS.private);
        const requestId = queued.reactAsync.asyncReactorRequestId;
        if (!requestId) throw new Error(`reactAsync answered ${JSON.stringify(queued.reactAsync)}`);
        const final = await untilTerminal(client, requestId, 30_000);
        const elapsed = performance.now() - started;
        if (final.status !== 'COMPLETED') throw new Error(`request ${requestId} ended ${final.status}`);
        const formulaMs =
          final.startedAt && final.completedAt ? Date.parse(final.completedAt) - Date.parse(final.startedAt) : 0;
        total.push(elapsed);
        beyondFormula.push(elapsed - formulaMs);
      }
    } finally {
      await client.dispose();
    }
    const figure = 'reactAsync';
    const sorted = [...beyondFormula].sort((a, b) => a - b);
    return [
      { figure, metric: 'invocations (one at a time)', value: invocations, unit: '' },
      { figure, metric: 'to COMPLETED p50 (total)', value: median(total), unit: 'ms' },
      checked(
        {
          figure,
          metric: 'to COMPLETED p50 beyond the formula',
          value: median(beyondFormula),
          unit: 'ms',
          target: '< 20 ms',
        },
        (v) => v < 20,
      ),
      {
        figure,
        metric: 'to COMPLETED p99 beyond the formula',
        value: sorted[Math.floor(sorted.length * 0.99)] ?? Number.NaN,
        unit: 'ms',
      },
    ];
  },
};

interface ResultState {
  status: string;
  startedAt: string | null;
  completedAt: string | null;
}

function untilTerminal(client: ReturnType<typeof createClient>, requestId: string, timeoutMs: number) {
  return new Promise<ResultState>((resolve, reject) => {
    let last: ResultState | undefined;
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no terminal state for ${requestId} in ${timeoutMs} ms`));
    }, timeoutMs);
    const unsubscribe = client.subscribe<{ reactorResult: ResultState }>(
      { query: RESULT, variables: { requestId } },
      {
        next: (message) => {
          if (message.errors?.length) return reject(new Error(JSON.stringify(message.errors)));
          last = message.data?.reactorResult ?? last;
          if (last && (last.status === 'COMPLETED' || last.status === 'FAILED')) {
            clearTimeout(timer);
            resolve(last);
          }
        },
        error: (error) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
        },
        complete: () => {
          clearTimeout(timer);
          if (last) resolve(last);
          else reject(new Error(`subscription for ${requestId} completed without a state`));
        },
      },
    );
  });
}
