import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/service.ts';
import { createReactorWithCode, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';

// A request may wait one second for a runner: one queued more than a second ago and never started is failed.
let gateway: TestGateway;
let tenant: TestTenant;
let reactorId: string;
let receiver: http.Server;
let callbackUrl: string;
const deliveries: { id: string; status: string; error: { code: string } | null }[] = [];

beforeAll(async () => {
  gateway = await startTestGateway({ env: { JOB_MAX_QUEUE_MS: '1000', EGRESS_ALLOW: '127.0.0.1/32' } });
  tenant = await gateway.createTenant();
  reactorId = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({ raw: 1 });');
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      deliveries.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  callbackUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;
});
afterAll(async () => {
  receiver?.close();
  await gateway?.close();
});

async function queue(): Promise<string> {
  const result = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, callbackUrl }, tenant.privateKey);
  const id = result.data?.reactAsync?.asyncReactorRequestId;
  if (!id) throw new Error(`reactAsync failed: ${JSON.stringify(result)}`);
  return id;
}

async function resultOf(requestId: string) {
  return (await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey)).data?.reactorResult;
}

function deliveryFor(requestId: string) {
  return until(`a callback for ${requestId}`, () => deliveries.find((d) => d.id === requestId), 10_000);
}

describe('the async sweeper', () => {
  it('fails a request no runner started within JOB_MAX_QUEUE_MS, tells its callback, and runs the rest', async () => {
    await gateway.app.runner.stop();
    const stale = await queue();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const fresh = await queue();
    await gateway.app.runner.sweep();

    expect(await resultOf(stale)).toMatchObject({
      status: 'FAILED',
      error: {
        code: 'SERVICE_UNAVAILABLE',
        status: 503,
        message: 'No job runner started this request within 1 s of its queueing; it was not run.',
      },
      startedAt: null,
    });
    expect(await deliveryFor(stale)).toMatchObject({ status: 'FAILED', error: { code: 'SERVICE_UNAVAILABLE' } });
    expect((await resultOf(fresh)).status).toBe('PENDING');

    gateway.app.runner.start();
    expect(await deliveryFor(fresh)).toMatchObject({ status: 'COMPLETED', raw: 1 });
  });

  it('tells the callback of a request whose runner died', async () => {
    await gateway.app.runner.stop();
    const orphan = await queue();
    // As a runner that claimed it and then vanished leaves it, its lease already over.
    await gateway.app.database.db
      .updateTable('reactor_requests')
      .set({ status: 'RUNNING', runner_id: 'vanished', started_at: new Date(), lease_until: new Date(Date.now() - 1) })
      .where('id', '=', orphan)
      .execute();
    const events = gateway.app.services.invocations.events({ tenantId: tenant.tenantId } as Principal, reactorId);
    await gateway.app.runner.sweep();
    expect(await deliveryFor(orphan)).toMatchObject({ status: 'FAILED', error: { code: 'REACTOR_INTERRUPTED' } });
    // Its event names the reactor, as a finished run's does.
    const { value: event } = await events.next();
    await events.return?.();
    expect(event).toMatchObject({
      type: 'reactor.failed',
      reactor: { id: reactorId, name: 'Test reactor' },
      request: { id: orphan, invocationType: 'ASYNC' },
      error: { code: 'REACTOR_INTERRUPTED' },
    });
    gateway.app.runner.start();
  });
});
