import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, createToken, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';

// The same gateway in development (formula logs exposed) and as in production (not exposed).
let development: TestGateway;
let production: TestGateway;
beforeAll(async () => {
  [development, production] = await Promise.all([
    startTestGateway({ env: { EXPOSE_FORMULA_LOGS: 'true' } }),
    startTestGateway({ env: { EXPOSE_FORMULA_LOGS: 'false' } }),
  ]);
});
afterAll(async () => {
  await Promise.all([development?.close(), production?.close()]);
});

const CARD = '4242424242424242';
const PRINTING_FORMULA = `module.exports = async (req) => {
  console.log('card', req.args.card.number);
  if (req.args.fail) { console.error('about to fail'); throw new Error('boom'); }
  console.warn('done');
  return { raw: { ok: true } };
};`;
const RESULT_WITH_LOGS = `query($reactorId: UUID!, $requestId: UUID!) { reactorResult(reactorId: $reactorId, requestId: $requestId) {
  status raw error { code message } logs { level message } } }`;

async function runAsync(gateway: TestGateway, args: Record<string, unknown>) {
  const tenant: TestTenant = await gateway.createTenant();
  const reactorId = await createReactorWithCode(gateway, tenant.managementKey, PRINTING_FORMULA);
  const tokenId = await createToken(gateway, tenant.privateKey, {
    type: 'CARD',
    data: { number: CARD, expiration_month: 12, expiration_year: 2030 },
  });
  const queued = await gateway.gql<any>(
    REACT_ASYNC,
    { id: reactorId, args: { card: `{{ ${tokenId} }}`, ...args } },
    tenant.privateKey,
  );
  const requestId = queued.data?.reactAsync?.asyncReactorRequestId;
  if (!requestId) throw new Error(`reactAsync failed: ${JSON.stringify(queued)}`);
  const result = await until(
    `request ${requestId} finished`,
    async () => {
      const row = (await gateway.gql<any>(RESULT_WITH_LOGS, { reactorId, requestId }, tenant.privateKey)).data
        ?.reactorResult;
      return row?.status === 'COMPLETED' || row?.status === 'FAILED' ? row : undefined;
    },
    15_000,
  );
  const stored = await gateway.app.database.db
    .selectFrom('reactor_requests')
    .select('logs')
    .where('id', '=', requestId)
    .executeTakeFirstOrThrow();
  return { requestId, result, storedLogs: stored.logs === null ? null : Buffer.from(stored.logs) };
}

describe('the console output of async runs', () => {
  it('is kept with a completed result in development, sealed: the detokenized data it printed is not in the row', async () => {
    const { result, storedLogs } = await runAsync(development, {});
    expect(result).toMatchObject({ status: 'COMPLETED', raw: { ok: true } });
    expect(result.logs).toEqual([
      { level: 'log', message: `card ${CARD}` },
      { level: 'warn', message: 'done' },
    ]);
    expect(storedLogs).not.toBeNull();
    expect(storedLogs?.includes(CARD)).toBe(false);
    expect(storedLogs?.includes('done')).toBe(false);
  });

  it('is kept with a failed result too: what the formula printed before it threw', async () => {
    const { result } = await runAsync(development, { fail: true });
    expect(result).toMatchObject({ status: 'FAILED', error: { code: 'REACTOR_RUNTIME_ERROR', message: 'boom' } });
    expect(result.logs).toEqual([
      { level: 'log', message: `card ${CARD}` },
      { level: 'error', message: 'about to fail' },
    ]);
  });

  it('is neither stored nor shown in production', async () => {
    for (const args of [{}, { fail: true }]) {
      const { result, storedLogs } = await runAsync(production, args);
      expect(result.status).toBe(args.fail ? 'FAILED' : 'COMPLETED');
      expect(result.logs).toBeNull();
      expect(storedLogs).toBeNull();
    }
  });

  it('cannot be read as another request’s: the sealed lines are bound to their own request', async () => {
    const [first, second] = [await runAsync(development, {}), await runAsync(development, {})];
    const row = await development.app.database.db
      .selectFrom('reactor_requests')
      .selectAll()
      .where('id', '=', second.requestId)
      .executeTakeFirstOrThrow();
    const { logsOf } = development.app.services.invocations;
    expect(logsOf(row)).toEqual(second.result.logs);
    // The first request's sealed lines pasted into the second's row are refused, not decrypted.
    expect(() => logsOf({ ...row, logs: first.storedLogs })).toThrow(/could not be decrypted/);
  });
});
