import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from './logger.ts';
import type { RuntimeStats } from './runtime/types.ts';

/**
 * Prometheus metrics, served on a port of their own (METRICS_PORT) so that they never share the public listener:
 * an operator scrapes them from inside, and nothing is added to a GraphQL request. No label names a tenant, a
 * reactor or a key: the figures are the process's and the queue's, never a customer's. prom-client is the
 * well-kept library for this (counters, histograms, the process and event-loop metrics it collects by itself).
 */
export interface InvocationMetrics {
  /**
   * An invocation that ran (or was failed without running, as an async request whose lease or queue time ran out)
   * ended: `outcome` is `completed` or the error code in lower case (`reactor_runtime_error`, `bad_request`...),
   * `unexpected` for a masked error.
   */
  ended(invocationType: 'SYNC' | 'ASYNC', outcome: string, elapsedMs: number | null): void;
}

/** What runs when metrics are off: nothing. */
export const NO_METRICS: InvocationMetrics = { ended() {} };

export interface Metrics extends InvocationMetrics {
  registry: Registry;
}

const PREFIX = 'reactor_gateway_';
// From a trivial formula's milliseconds to async runs' maximum timeout (210 s).
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 210];

export function createMetrics(deps: {
  /** The queue across every instance on the database, read at each scrape. */
  countUnfinished: () => Promise<{ pending: number; running: number }>;
  /** This instance's sandbox pool, read at each scrape. */
  runtimeStats: () => RuntimeStats;
  log: Logger;
}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const invocations = new Counter({
    name: `${PREFIX}invocations_total`,
    help: 'Reactor invocations that ended, by invocation type (sync, async) and outcome (completed or error code).',
    labelNames: ['invocation_type', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${PREFIX}invocation_duration_seconds`,
    help: 'How long reactor invocations took, from the start of `react` or of the async run to its outcome.',
    labelNames: ['invocation_type'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: `${PREFIX}async_requests`,
    help: 'Async reactor requests not yet finished, by status (pending, running), across every instance.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const { pending, running } = await deps.countUnfinished();
        this.set({ status: 'pending' }, pending);
        this.set({ status: 'running' }, running);
      } catch (error) {
        // The database away: the scrape still answers, without this gauge (an absent series, not a false zero).
        deps.log.warn({ err: error }, 'metrics: counting async requests failed');
      }
    },
  });
  const sandbox = (name: string, help: string, read: (stats: RuntimeStats) => number) =>
    new Gauge({
      name: `${PREFIX}sandbox_${name}`,
      help,
      registers: [registry],
      collect() {
        this.set(read(deps.runtimeStats()));
      },
    });
  sandbox('threads', 'Worker threads running formulas, spares for stuck threads included.', (s) => s.threads);
  sandbox('queued_tasks', 'Formula runs and checks waiting for a worker thread.', (s) => s.queued);
  sandbox('stuck_threads', "Worker threads held by a formula's long synchronous call.", (s) => s.stuckThreads);
  return {
    registry,
    ended(invocationType, outcome, elapsedMs) {
      const type = invocationType === 'SYNC' ? 'sync' : 'async';
      invocations.inc({ invocation_type: type, outcome });
      if (elapsedMs !== null) duration.observe({ invocation_type: type }, elapsedMs / 1000);
    },
  };
}

/** GET /metrics on its own port, in Prometheus' text format; anything else is 404. */
export async function startMetricsServer(
  metrics: Metrics,
  options: { port: number; host: string; log: Logger; token?: string },
): Promise<{ url: string; close(): Promise<void> }> {
  const expected = options.token ? createHash('sha256').update(`Bearer ${options.token}`).digest() : null;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('Not found: metrics are at GET /metrics.\n');
      return;
    }
    // Compared as hashes, in constant time: equal lengths whatever was sent.
    const given = createHash('sha256')
      .update(req.headers.authorization ?? '')
      .digest();
    if (expected && !timingSafeEqual(given, expected)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' });
      res.end('Send METRICS_TOKEN as `Authorization: Bearer <token>`.\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      },
      (error: unknown) => {
        options.log.error({ err: error }, 'metrics: rendering failed');
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('Metrics could not be rendered.\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(`Port ${options.port} on ${options.host} is already in use: set METRICS_PORT to a free one.`)
          : error,
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host}:${port}/metrics`;
  options.log.info({ url }, 'metrics listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
