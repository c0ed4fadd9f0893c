import autocannon from 'autocannon';

export interface LoadResult {
  /** Mean requests per second over the run. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx answers, errors and timeouts: a run with any is not a throughput figure. */
  failures: number;
  /** Requests completed in the run. */
  requests: number;
}

export interface GraphQLLoad {
  url: string;
  query: string;
  variables?: Record<string, unknown>;
  headers?: Record<string, string>;
  connections: number;
  durationSeconds: number;
}

/** One closed-loop autocannon run of a single GraphQL POST. */
export async function loadGraphQL(load: GraphQLLoad): Promise<LoadResult> {
  const result = await autocannon({
    url: load.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...load.headers },
    body: JSON.stringify({ query: load.query, variables: load.variables }),
    connections: load.connections,
    duration: load.durationSeconds,
  });
  return {
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
    requests: result.requests.total,
  };
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Medians over rounds of each contender's results. */
export function medianOf(results: LoadResult[]): LoadResult {
  return {
    rps: median(results.map((r) => r.rps)),
    p50Ms: median(results.map((r) => r.p50Ms)),
    p99Ms: median(results.map((r) => r.p99Ms)),
    failures: results.reduce((sum, r) => sum + r.failures, 0),
    requests: results.reduce((sum, r) => sum + r.requests, 0),
  };
}

/**
 * Latency one request at a time, timed with hrtime: autocannon's percentiles are whole milliseconds, too coarse
 * for a sub-millisecond request at concurrency 1. Bounded by time and by count.
 */
export async function sequentialLatency(
  load: Omit<GraphQLLoad, 'connections'> & { maxRequests?: number },
): Promise<{ p50Ms: number; p99Ms: number; requests: number; failures: number }> {
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(load.url);
  const body = JSON.stringify({ query: load.query, variables: load.variables });
  const headers = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    ...load.headers,
  };
  const samples: number[] = [];
  let failures = 0;
  const deadline = performance.now() + load.durationSeconds * 1000;
  const max = load.maxRequests ?? 100_000;
  try {
    while (samples.length < max && performance.now() < deadline) {
      const started = process.hrtime.bigint();
      const status = await new Promise<number>((resolve, reject) => {
        const request = http.request(
          { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent },
          (response) => {
            response.resume();
            response.once('end', () => resolve(response.statusCode ?? 0));
          },
        );
        request.once('error', reject);
        request.end(body);
      });
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (status !== 200) failures++;
    }
  } finally {
    agent.destroy();
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? Number.NaN;
  return { p50Ms: at(0.5), p99Ms: at(0.99), requests: samples.length, failures };
}
