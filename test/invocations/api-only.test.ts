import { afterAll, beforeAll, expect, it } from 'vitest';
import { createReactorWithCode, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';

// JOB_CONCURRENCY=0: an instance that serves the API and queues async requests but never runs them itself.
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { JOB_CONCURRENCY: '0' } });
});
afterAll(() => gateway?.close());

it('queues reactAsync requests and leaves them for other instances', async () => {
  const tenant = await gateway.createTenant();
  const reactorId = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async () => ({ raw: 1 });',
  );
  const receipt = await gateway.gql<any>(REACT_ASYNC, { id: reactorId }, tenant.privateKey);
  const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
  expect(requestId).toBeTypeOf('string');
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const result = await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey);
  expect(result.data?.reactorResult).toMatchObject({ status: 'PENDING' });
});
