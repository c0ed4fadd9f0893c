import { afterAll, beforeAll, expect, it } from 'vitest';
import { createReactorWithCode, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { principalFor } from '../tokens/support.ts';

// JOB_CONCURRENCY=0: an instance that serves the API and queues async requests but never runs them itself.
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { JOB_CONCURRENCY: '0' } });
});
afterAll(() => gateway?.close());

/** A tenant, a reactor of it and one reactAsync request of that reactor, with what the request returned. */
async function queueOne() {
  const tenant = await gateway.createTenant();
  const reactorId = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async () => ({ raw: 1 });',
  );
  const receipt = await gateway.gql<any>(REACT_ASYNC, { id: reactorId }, tenant.privateKey);
  return { tenant, reactorId, requestId: receipt.data?.reactAsync.asyncReactorRequestId as unknown };
}

it('queues reactAsync requests and leaves them for other instances', async () => {
  const { tenant, reactorId, requestId } = await queueOne();
  expect(requestId).toBeTypeOf('string');
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const result = await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey);
  expect(result.data?.reactorResult).toMatchObject({ status: 'PENDING' });
});

it('ends a result subscription as soon as its client leaves, though the request never changes here', async () => {
  const { tenant, requestId } = await queueOne();
  if (typeof requestId !== 'string') throw new Error('reactAsync did not queue');
  const updates = gateway.app.services.invocations.resultUpdates(
    await principalFor(gateway, tenant.privateKey),
    requestId,
  );
  expect((await updates.next()).value).toMatchObject({ id: requestId, status: 'PENDING' });
  // What graphql-ws does when the client completes: return() while the server's next() waits for a change.
  const waiting = updates.next();
  const outcome = await Promise.race([
    updates.return?.(undefined).then(() => 'ended'),
    new Promise((resolve) => setTimeout(() => resolve('still waiting after 2 s'), 2_000)),
  ]);
  expect(outcome).toBe('ended');
  expect(await waiting).toEqual({ done: true, value: undefined });
});
