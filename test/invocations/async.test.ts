import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createReactorWithCode, createToken, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { storedRequest } from '../support/requests.ts';
import { until } from '../support/until.ts';
import { collect, wsClient } from '../support/ws.ts';
import { grantPrivateKey } from '../tokens/support.ts';

let gateway: TestGateway;
let server: RunningServer;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  tenant = await gateway.createTenant();
  // reactorEvents needs reactor:read, which a PRIVATE key holds only if named.
  await grantPrivateKey(gateway, tenant, ['reactor:read']);
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

const RESULT_SUBSCRIPTION = `subscription($requestId: UUID!) { reactorResult(requestId: $requestId) {
  id status raw tokens error { code message } } }`;

async function reactAsync(reactorId: string, args?: unknown, timeoutMs?: number) {
  const result = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args, timeoutMs }, tenant.privateKey);
  return result.data?.reactAsync;
}

async function waitForResult(reactorId: string, requestId: string, key = tenant.privateKey, timeoutMs = 15_000) {
  return until(
    `request ${requestId} to finish`,
    async () => {
      const row = (await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, key)).data?.reactorResult;
      return row && (row.status === 'COMPLETED' || row.status === 'FAILED') ? row : undefined;
    },
    timeoutMs,
  );
}

describe('reactAsync', () => {
  it('queues the request, runs it with detokenized args, and stores the args exactly as sent', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => ({ raw: { last4: req.args.card.number.slice(-4) } });',
    );
    const tokenId = await createToken(gateway, tenant.privateKey, {
      type: 'CARD',
      data: { number: '4242424242424242', expiration_month: 12, expiration_year: 2030 },
    });
    const receipt = await reactAsync(reactorId, { card: `{{ ${tokenId} }}` });
    expect(receipt.__typename).toBe('AsyncReactorRequest');
    const row = await waitForResult(reactorId, receipt.asyncReactorRequestId);
    expect(row).toMatchObject({ status: 'COMPLETED', raw: { last4: '4242' }, error: null });
    expect(new Date(row.completedAt).getTime()).toBeGreaterThanOrEqual(new Date(row.startedAt).getTime());

    // The args are kept as sent, expressions intact: the detokenized card never reaches the database.
    const stored = await storedRequest(gateway.app.database.db, receipt.asyncReactorRequestId);
    expect(stored?.args).toEqual({ card: `{{ ${tokenId} }}` });
  });

  it('stores a formula error as FAILED with its code', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      "const { InvalidPaymentMethodError } = require('@basis-theory/basis-theory-reactor-formulas-sdk-js');" +
        "module.exports = async () => { throw new InvalidPaymentMethodError('card declined'); };",
    );
    const receipt = await reactAsync(reactorId);
    const row = await waitForResult(reactorId, receipt.asyncReactorRequestId);
    expect(row).toMatchObject({ status: 'FAILED', error: { code: 'INVALID_PAYMENT_METHOD', status: 402 } });
    expect(row.error.errors).toEqual({ error: ['card declined'] });
  });

  it('stops a run at the requested timeoutMs with REACTOR_TIMEOUT', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { for (;;) {} };',
    );
    const started = Date.now();
    const receipt = await reactAsync(reactorId, {}, 10_000);
    const row = await waitForResult(reactorId, receipt.asyncReactorRequestId, tenant.privateKey, 20_000);
    expect(row.error.code, JSON.stringify(row)).toBe('REACTOR_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
    expect(Date.now() - started).toBeLessThan(10_000 + 3_000);
  }, 30_000);

  it('refuses a timeoutMs outside 10,000..210,000 with BAD_REQUEST', async () => {
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({});');
    for (const timeoutMs of [9_999, 210_001]) {
      const result = await reactAsync(reactorId, {}, timeoutMs);
      expect(result).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
      expect(result.errors).toHaveProperty('timeoutMs');
    }
    expect(
      await gateway.app.database.db
        .selectFrom('reactor_requests')
        .select('id')
        .where('reactor_id', '=', reactorId)
        .execute(),
    ).toEqual([]);
  });

  it('refuses args that are not an object at once, as react does, and queues nothing', async () => {
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({});');
    for (const args of [[1], 7, true]) {
      const expected = { code: 'BAD_REQUEST', errors: { args: ['must be an object'] } };
      expect(await reactAsync(reactorId, args), JSON.stringify(args)).toMatchObject(expected);
      const sync = await gateway.gql<any>(REACT, { id: reactorId, args }, tenant.privateKey);
      expect(sync.data?.react, JSON.stringify(args)).toMatchObject(expected);
    }
    const queued = await gateway.app.database.db
      .selectFrom('reactor_requests')
      .select('id')
      .where('reactor_id', '=', reactorId)
      .execute();
    expect(queued).toEqual([]);
  });

  it("reads another tenant's result as null, exactly like an unknown id", async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const receipt = await reactAsync(reactorId);
    await waitForResult(reactorId, receipt.asyncReactorRequestId);
    const other = await gateway.createTenant();
    const foreign = await gateway.gql(
      REACTOR_RESULT,
      { reactorId, requestId: receipt.asyncReactorRequestId },
      other.privateKey,
    );
    const unknown = await gateway.gql(
      REACTOR_RESULT,
      { reactorId, requestId: '01a204cc-a83d-77b0-9658-e28eab878399' },
      other.privateKey,
    );
    expect(foreign).toEqual({ data: { reactorResult: null } });
    expect(foreign).toEqual(unknown);
  });
});

describe('subscriptions over graphql-ws', () => {
  it('streams each state of a request and completes after the terminal one', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { await new Promise((r) => setTimeout(r, 1000)); return { raw: { done: true } }; };',
    );
    const receipt = await reactAsync(reactorId);
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const { values, completed, errors } = await collect(client, RESULT_SUBSCRIPTION, {
        requestId: receipt.asyncReactorRequestId,
      });
      expect(errors).toEqual([]);
      expect(completed).toBe(true);
      const statuses = values.map((v) => v.reactorResult.status);
      // Subscribed within the formula's 1 s: the running state is seen, then the terminal one, each once, in order
      // (PENDING too when the runner had not claimed the job yet).
      expect([
        ['PENDING', 'RUNNING', 'COMPLETED'],
        ['RUNNING', 'COMPLETED'],
      ]).toContainEqual(statuses);
      expect(values.at(-1).reactorResult.raw).toEqual({ done: true });
    } finally {
      await client.dispose();
    }
  });

  it('emits the final state once and completes when subscribing after completion', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 7 });',
    );
    const receipt = await reactAsync(reactorId);
    await waitForResult(reactorId, receipt.asyncReactorRequestId);
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const { values, completed } = await collect(client, RESULT_SUBSCRIPTION, {
        requestId: receipt.asyncReactorRequestId,
      });
      expect(completed).toBe(true);
      expect(values.map((v) => v.reactorResult.status)).toEqual(['COMPLETED']);
    } finally {
      await client.dispose();
    }
  });

  it("streams reactor events of the caller's tenant only, sync calls included", async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const other = await gateway.createTenant();
    const theirReactor = await createReactorWithCode(
      gateway,
      other.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const client = wsClient(server.url, tenant.privateKey);
    try {
      const events = collect(
        client,
        `subscription { reactorEvents { type reactor { id name } request { id invocationType applicationId } elapsedMs
          error { code } } }`,
        {},
        { until: (values) => values.length >= 2, timeoutMs: 10_000 },
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      await gateway.gql(REACT, { id: theirReactor }, other.privateKey);
      await gateway.gql(REACT, { id: reactorId }, tenant.privateKey);
      const { values } = await events;
      expect(
        values.map((v) => [v.reactorEvents.type, v.reactorEvents.reactor.id, v.reactorEvents.request.invocationType]),
      ).toEqual([
        ['reactor.invoked', reactorId, 'SYNC'],
        ['reactor.completed', reactorId, 'SYNC'],
      ]);
      expect(values[1].reactorEvents.elapsedMs).toBeGreaterThanOrEqual(0);
      // One request id for the run's two events (react makes it only when someone listens).
      expect(values[0].reactorEvents.request.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
      expect(values[1].reactorEvents.request.id).toBe(values[0].reactorEvents.request.id);
      // The invoker: the private key's application.
      const invoker = (await gateway.gql<any>('{ viewer { application { id } } }', {}, tenant.privateKey)).data?.viewer;
      expect(values.map((v) => v.reactorEvents.request.applicationId)).toEqual([
        invoker.application.id,
        invoker.application.id,
      ]);
    } finally {
      await client.dispose();
    }
  });

  it("shows a failure's message only to keys that may read outcomes: it may hold detokenized data", async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      "module.exports = async (req) => { throw new Error('declined ' + req.args.pan); };",
    );
    const created = await gateway.gql<any>(
      `mutation { createApplication(input: { name: "dashboard", type: MANAGEMENT, permissions: ["reactor:read"] }) {
        ... on CreateApplicationPayload { key } } }`,
      {},
      tenant.managementKey,
    );
    const query = `subscription($id: UUID) { reactorEvents(reactorId: $id) { type error { code status message detail } } }`;
    const [dashboard, invoker] = [
      wsClient(server.url, created.data?.createApplication.key),
      wsClient(server.url, tenant.privateKey),
    ];
    try {
      const failed = (client: typeof dashboard) =>
        collect(client, query, { id: reactorId }, { until: (values) => values.length >= 2, timeoutMs: 10_000 });
      const [seenByDashboard, seenByInvoker] = [failed(dashboard), failed(invoker)];
      await new Promise((resolve) => setTimeout(resolve, 300));
      await gateway.gql(REACT, { id: reactorId, args: { pan: '4242424242424242' } }, tenant.privateKey);
      const [hidden, shown] = [(await seenByDashboard).values[1], (await seenByInvoker).values[1]];
      expect(shown.reactorEvents.error).toMatchObject({
        code: 'REACTOR_RUNTIME_ERROR',
        message: 'declined 4242424242424242',
      });
      expect(hidden.reactorEvents).toMatchObject({
        type: 'reactor.failed',
        error: { code: 'REACTOR_RUNTIME_ERROR', status: 500, detail: null },
      });
      expect(hidden.reactorEvents.error.message).toMatch(/^Hidden: this key may not read invocations/);
    } finally {
      await Promise.all([dashboard.dispose(), invoker.dispose()]);
    }
  });

  it('closes a socket without a valid key with 4401', async () => {
    for (const key of [null, 'key_wrong']) {
      let closeCode = 0;
      const client = wsClient(server.url, key, (code) => {
        closeCode = code;
      });
      const { errors } = await collect(
        client,
        RESULT_SUBSCRIPTION,
        { requestId: '01a204cc-a83d-77b0-9658-e28eab878399' },
        { timeoutMs: 5_000 },
      );
      expect(errors.length).toBeGreaterThan(0);
      expect(closeCode).toBe(4401);
      await client.dispose();
    }
  });

  it('refuses reactorEvents to a key without reactor:read', async () => {
    const created = await gateway.gql<any>(
      `mutation { createApplication(input: { name: "browser", type: PUBLIC }) { ... on CreateApplicationPayload { key } } }`,
      {},
      tenant.managementKey,
    );
    const client = wsClient(server.url, created.data?.createApplication.key);
    try {
      const { values, errors } = await collect(
        client,
        'subscription { reactorEvents { type } }',
        {},
        { timeoutMs: 5_000 },
      );
      expect(values).toEqual([]);
      expect(JSON.stringify(errors)).toContain('FORBIDDEN');
    } finally {
      await client.dispose();
    }
  });
});
