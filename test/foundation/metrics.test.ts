import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsServer } from '../../src/metrics.ts';
import { createReactorWithCode, REACT, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';

// GET /metrics (METRICS_PORT): Prometheus text on a port of its own, with no tenant's names or ids in it.
let gateway: TestGateway;
let metrics: { url: string; close(): Promise<void> };
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { METRICS_PORT: '0', REACT_TIMEOUT_MS: '1500' } });
  metrics = await startMetricsServer(gateway.app.metrics!, { port: 0, host: '127.0.0.1', log: gateway.app.log });
  tenant = await gateway.createTenant();
});
afterAll(async () => {
  await metrics?.close();
  await gateway?.close();
});

async function scrape(): Promise<string> {
  const response = await fetch(metrics.url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The value of one series, or undefined if the scrape has none. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('the metrics endpoint', () => {
  it('counts invocations by type and outcome, times them, and shows the async queue', async () => {
    const before = await scrape();
    const count = (outcome: string, type = 'sync') =>
      `reactor_gateway_invocations_total{invocation_type="${type}",outcome="${outcome}"}`;
    const code = `module.exports = async (req) => {
      const { BadRequestError } = require('@basis-theory/basis-theory-reactor-formulas-sdk-js');
      if (req.args.refuse) throw new BadRequestError('refused');
      if (req.args.crash) throw new Error('crashed');
      return { raw: 'ok' };
    };`;
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, code);
    const react = async (args: Record<string, unknown>) =>
      (await gateway.gql<any>(REACT, { id: reactorId, args }, tenant.privateKey)).data?.react;
    expect((await react({})).raw).toBe('ok');
    expect((await react({})).raw).toBe('ok');
    expect((await react({ refuse: true })).code).toBe('BAD_REQUEST');
    expect((await react({ crash: true })).code).toBe('REACTOR_RUNTIME_ERROR');
    const queued = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args: {} }, tenant.privateKey);
    expect(queued.data?.reactAsync.asyncReactorRequestId).toBeTruthy();

    const after = await until('the async run counted', async () => {
      const text = await scrape();
      return value(text, count('completed', 'async')) === 1 ? text : undefined;
    });
    expect(value(before, count('completed'))).toBeUndefined();
    expect(value(after, count('completed'))).toBe(2);
    expect(value(after, count('bad_request'))).toBe(1);
    expect(value(after, count('reactor_runtime_error'))).toBe(1);
    expect(value(after, 'reactor_gateway_invocation_duration_seconds_count{invocation_type="sync"}')).toBe(4);
    expect(value(after, 'reactor_gateway_invocation_duration_seconds_count{invocation_type="async"}')).toBe(1);
    expect(value(after, 'reactor_gateway_async_requests{status="pending"}')).toBe(0);
    expect(value(after, 'reactor_gateway_async_requests{status="running"}')).toBe(0);
    // prom-client's own process metrics, under the same prefix.
    expect(value(after, 'reactor_gateway_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    // Nothing that names a customer: no tenant, reactor or request id, and no key.
    for (const secret of [
      tenant.tenantId,
      reactorId,
      queued.data.reactAsync.asyncReactorRequestId,
      tenant.privateKey,
    ]) {
      expect(after).not.toContain(secret);
    }
  });

  it("shows the sandbox pool: its threads, and a thread held by a formula's endless loop", async () => {
    const idle = await scrape();
    expect(value(idle, 'reactor_gateway_sandbox_threads')).toBe(2);
    expect(value(idle, 'reactor_gateway_sandbox_queued_tasks')).toBe(0);
    expect(value(idle, 'reactor_gateway_sandbox_stuck_threads')).toBe(0);
    const looping = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { for (;;) {} };',
    );
    const running = gateway.gql<any>(REACT, { id: looping }, tenant.privateKey);
    await until('a stuck thread shown', async () =>
      (value(await scrape(), 'reactor_gateway_sandbox_stuck_threads') ?? 0) >= 1 ? true : undefined,
    );
    expect((await running).data?.react.code).toBe('REACTOR_TIMEOUT');
    const after = await scrape();
    expect(value(after, 'reactor_gateway_invocations_total{invocation_type="sync",outcome="reactor_timeout"}')).toBe(1);
    await until('the thread free again', async () =>
      value(await scrape(), 'reactor_gateway_sandbox_stuck_threads') === 0 ? true : undefined,
    );
  });

  it('answers 404 for anything but GET /metrics', async () => {
    const base = metrics.url.replace(/\/metrics$/, '');
    expect((await fetch(`${base}/graphql`)).status).toBe(404);
    expect((await fetch(metrics.url, { method: 'POST' })).status).toBe(404);
  });

  it('asks for METRICS_TOKEN as a bearer token when it is set', async () => {
    const guarded = await startMetricsServer(gateway.app.metrics!, {
      port: 0,
      host: '127.0.0.1',
      log: gateway.app.log,
      token: 'scrape-secret',
    });
    try {
      for (const authorization of [undefined, 'Bearer wrong', 'scrape-secret', 'Bearer scrape-secret-and-more']) {
        const response = await fetch(guarded.url, { headers: authorization ? { authorization } : {} });
        expect(response.status, authorization).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
      }
      const ok = await fetch(guarded.url, { headers: { authorization: 'Bearer scrape-secret' } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('reactor_gateway_invocations_total');
    } finally {
      await guarded.close();
    }
  });

  it('is off unless METRICS_PORT is set', async () => {
    const plain = await startTestGateway();
    try {
      expect(plain.app.metrics).toBeNull();
    } finally {
      await plain.close();
    }
  });
});
