import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowAsText } from '../support/at-rest.ts';
import { createReactorWithCode, createToken, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { storedRequest, testSealing } from '../support/requests.ts';
import { until } from '../support/until.ts';

/**
 * An async request keeps its args and its run's outcome sealed with the tenant's key (src/invocations/
 * request-sealing.ts): a card number sent in args without a token, or detokenized into a result or an error message,
 * is never in the database in the clear.
 */

const TOKENIZED = '4242424242424242';
const SENT_IN_THE_CLEAR = '5555555555554444';
const ECHO = `module.exports = async (req) => {
  if (req.args.fail) throw new Error('declined ' + req.args.card.number);
  return { raw: { card: req.args.card.number, direct: req.args.direct } };
};`;

let gateway: TestGateway;
let tenant: TestTenant;
let reactorId: string;
let tokenId: string;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant();
  reactorId = await createReactorWithCode(gateway, tenant.managementKey, ECHO);
  tokenId = await createToken(gateway, tenant.privateKey, {
    type: 'CARD',
    data: { number: TOKENIZED, expiration_month: 12, expiration_year: 2030 },
  });
});
afterAll(async () => {
  await gateway?.close();
});

async function runAsync(args: Record<string, unknown>) {
  const queued = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args }, tenant.privateKey);
  const requestId = queued.data?.reactAsync?.asyncReactorRequestId;
  if (!requestId) throw new Error(`reactAsync failed: ${JSON.stringify(queued)}`);
  const result = await until(`request ${requestId} finished`, async () => {
    const row = (await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey)).data
      ?.reactorResult;
    return row?.status === 'COMPLETED' || row?.status === 'FAILED' ? row : undefined;
  });
  return { requestId, result };
}

/** Every column of the stored row as text (rowAsText). */
async function storedText(requestId: string): Promise<string> {
  const row = await gateway.app.database.db
    .selectFrom('reactor_requests')
    .selectAll()
    .where('id', '=', requestId)
    .executeTakeFirstOrThrow();
  return rowAsText(row);
}

describe('async requests at rest', () => {
  it('keep args, result and error sealed, and answer them in the clear', async () => {
    const args = { card: { number: `{{ ${tokenId} | json: '$.number' }}` }, direct: SENT_IN_THE_CLEAR };
    const completed = await runAsync(args);
    expect(completed.result).toMatchObject({
      status: 'COMPLETED',
      raw: { card: TOKENIZED, direct: SENT_IN_THE_CLEAR },
      error: null,
    });
    const failed = await runAsync({ ...args, fail: true });
    expect(failed.result).toMatchObject({
      status: 'FAILED',
      raw: null,
      error: { code: 'REACTOR_RUNTIME_ERROR', message: `declined ${TOKENIZED}` },
    });

    for (const { requestId } of [completed, failed]) {
      const text = await storedText(requestId);
      expect(text).not.toContain(TOKENIZED);
      expect(text).not.toContain(SENT_IN_THE_CLEAR);
      expect(text).not.toContain('declined');
      // Opened with the tenant's key: the args exactly as sent, the expression intact.
      expect((await storedRequest(gateway.app.database.db, requestId))?.args).toEqual(
        requestId === failed.requestId ? { ...args, fail: true } : args,
      );
    }
  });

  it('cannot be opened as another request’s, or as another part of the same request', async () => {
    const [first, second] = [await runAsync({ card: { number: 'a' } }), await runAsync({ card: { number: 'b' } })];
    const read = (id: string) =>
      gateway.app.database.db.selectFrom('reactor_requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const [one, two] = [await read(first.requestId), await read(second.requestId)];
    expect(testSealing.open(two)).toMatchObject({ args: { card: { number: 'b' } }, raw: { card: 'b' } });
    expect(() => testSealing.open({ ...two, sealed_outcome: one.sealed_outcome })).toThrow(/could not be decrypted/);
    expect(() => testSealing.open({ ...two, sealed_args: one.sealed_args })).toThrow(/could not be decrypted/);
    expect(() => testSealing.open({ ...two, sealed_args: two.sealed_outcome })).toThrow(/could not be decrypted/);
  });

  it('still reads a request stored in the clear by an earlier version', async () => {
    const { requestId } = await runAsync({ card: { number: 'sealed' } });
    await gateway.app.database.db
      .updateTable('reactor_requests')
      .set({
        sealed_args: null,
        sealed_outcome: null,
        args: JSON.stringify({ card: { number: 'plain' } }),
        raw: JSON.stringify({ card: 'plain' }),
        tokens: JSON.stringify({}),
      })
      .where('id', '=', requestId)
      .execute();
    const read = await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey);
    expect(read.data?.reactorResult).toMatchObject({ status: 'COMPLETED', raw: { card: 'plain' }, tokens: {} });
    expect((await storedRequest(gateway.app.database.db, requestId))?.args).toEqual({ card: { number: 'plain' } });
  });
});
