import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../../src/json-depth.ts';
import { createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';

/**
 * JSON nested deeper than MAX_JSON_DEPTH (src/json-depth.ts), in what a client sends or a formula returns, is a typed
 * error at once. Before the limit, 10,000-level args overflowed JSON.stringify (a 500), and a result 2,000 levels
 * deep could not be posted from the worker thread, so `react` hung until its timeout and an async request stayed
 * RUNNING.
 */

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

let gateway: TestGateway;
let tenant: TestTenant;
let echo: string;
let deepener: string;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Deep JSON');
  echo = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async (req) => ({ raw: req.args });',
  );
  deepener = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    `module.exports = async (req) => {
      let value = 1;
      for (let i = 0; i < req.args.depth; i++) value = { a: value };
      return req.args.tokenize ? { tokenize: { deep: { type: 'TOKEN', data: value } } } : { raw: value };
    };`,
  );
});
afterAll(async () => {
  await gateway?.close();
});

describe('nestedDeeperThan', () => {
  it('counts objects and arrays, not scalars, and handles any depth', () => {
    expect(nestedDeeperThan('text', 0)).toBe(false);
    expect(nestedDeeperThan({}, 0)).toBe(true);
    expect(nestedDeeperThan(nested(MAX_JSON_DEPTH))).toBe(false);
    expect(nestedDeeperThan(nested(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(nestedDeeperThan([[{ a: [nested(MAX_JSON_DEPTH - 3)] }]])).toBe(true);
    expect(nestedDeeperThan(nested(1_000_000))).toBe(true);
  });
});

describe('what a client sends', () => {
  it('is accepted up to the limit', async () => {
    const args = { n: nested(MAX_JSON_DEPTH - 1) };
    const result = await gateway.gql<any>(REACT, { id: echo, args }, tenant.privateKey);
    expect(result.data?.react).toMatchObject({ __typename: 'ReactorResponse', raw: args });
  });

  it.each([MAX_JSON_DEPTH + 1, 10_000, 100_000])('is BAD_REQUEST beyond it: %i levels', async (depth) => {
    // Written out by hand: JSON.stringify itself overflows on the deeper ones, as the gateway's did.
    const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    const send = async (query: string, variables: string) => {
      const response = await gateway.post(
        `{"query":${JSON.stringify(query)},"variables":${variables}}`,
        tenant.privateKey,
      );
      return (await response.json()) as { errors?: { message: string; extensions?: unknown }[] };
    };
    const refusal = [
      expect.objectContaining({
        message: expect.stringContaining(`JSON may nest at most ${MAX_JSON_DEPTH} levels deep.`),
        extensions: { code: 'BAD_REQUEST', status: 400 },
      }),
    ];
    for (const operation of [REACT, REACT_ASYNC]) {
      expect((await send(operation, `{"id":"${echo}","args":${deep}}`)).errors).toEqual(refusal);
    }
    const token = 'mutation($data: JSON!) { createToken(input: { type: TOKEN, data: $data }) { __typename } }';
    expect((await send(token, `{"data":${deep}}`)).errors).toEqual(refusal);
  });
});

describe('what a formula returns', () => {
  it.each([
    [2_000, false],
    [2_000, true],
    [MAX_JSON_DEPTH + 1, false],
  ])('is REACTOR_RUNTIME_ERROR beyond the limit, at once: %i levels (tokenize %s)', async (depth, tokenize) => {
    const started = performance.now();
    const result = await gateway.gql<any>(REACT, { id: deepener, args: { depth, tokenize } }, tenant.privateKey);
    expect(result.data?.react).toMatchObject({
      code: 'REACTOR_RUNTIME_ERROR',
      message: `Reactor result may nest at most ${MAX_JSON_DEPTH} levels deep`,
    });
    // The hang it replaces lasted the whole call timeout (30 s by default).
    expect(performance.now() - started).toBeLessThan(10_000);

    const queued = await gateway.gql<any>(REACT_ASYNC, { id: deepener, args: { depth, tokenize } }, tenant.privateKey);
    const requestId = queued.data?.reactAsync?.asyncReactorRequestId;
    const row = await until('the async request to finish', async () => {
      const found = await gateway.gql<any>(REACTOR_RESULT, { reactorId: deepener, requestId }, tenant.privateKey);
      const status = found.data?.reactorResult?.status;
      return status === 'COMPLETED' || status === 'FAILED' ? found.data.reactorResult : undefined;
    });
    expect(row).toMatchObject({ status: 'FAILED', error: { code: 'REACTOR_RUNTIME_ERROR' } });
  });

  it('is returned as it is up to the limit', async () => {
    const result = await gateway.gql<any>(REACT, { id: deepener, args: { depth: MAX_JSON_DEPTH } }, tenant.privateKey);
    expect(result.data?.react).toMatchObject({ __typename: 'ReactorResponse', raw: nested(MAX_JSON_DEPTH) });
  });
});
