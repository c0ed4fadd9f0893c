import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { fuzzSettings } from '../support/fuzz.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { intArb, jsonArb, stringArb } from '../support/schema-fuzz.ts';
import { until } from '../support/until.ts';

/**
 * What a formula hands back is as untrusted as its code: any value returned, any value thrown, any SDK error built
 * from any argument, `tokenize` blocks of every shape. A formula that returns or throws whatever its args say is
 * driven with generated outcomes. Each `react` must end as a ReactorResponse or a typed Error result (never a
 * GraphQL error, never "Unexpected error."), and each async request must reach COMPLETED or FAILED, never stay
 * running or lose its outcome.
 */

const { seed: SEED, runs: RUNS } = fuzzSettings(150);

const PUPPET = `const sdk = require('@basis-theory/basis-theory-reactor-formulas-sdk-js');
module.exports = async (req) => {
  const { mode, value, cls } = req.args;
  if (mode === 'return') return value;
  if (mode === 'throw') throw value;
  throw new sdk[cls](value);
};`;

const SDK_ERRORS = [
  'BadRequestError',
  'InvalidReactorConfigurationError',
  'AuthenticationError',
  'InvalidPaymentMethodError',
  'AuthorizationError',
  'RateLimitError',
  'ReactorRuntimeError',
  'ServiceUnavailableError',
  'CustomHttpResponseError',
];

const card = fc.record(
  {
    number: fc.constantFrom('4242424242424242', '4242', 'x'),
    expiration_month: fc.oneof(fc.integer({ min: 0, max: 13 }), stringArb),
    expiration_year: fc.constantFrom(2030, 1999, '2031'),
    cvc: fc.constantFrom('123', 12),
  },
  { requiredKeys: [] },
);
const tokenRequest = fc.record(
  {
    type: fc.constantFrom('TOKEN', 'CARD', 'BANK', 'nope'),
    data: fc.oneof(jsonArb, card),
    metadata: fc.oneof(jsonArb, fc.dictionary(stringArb, fc.oneof(stringArb, intArb), { maxKeys: 3 })),
    containers: fc.oneof(jsonArb, fc.constant(['/general/high/'])),
    expiresAt: fc.constantFrom('2099-01-01T00:00:00Z', '2000-01-01T00:00:00Z', 'soon', 5),
  },
  { requiredKeys: ['type', 'data'] },
);
const tokenize = fc.oneof(jsonArb, fc.dictionary(stringArb, fc.oneof(tokenRequest, jsonArb), { maxKeys: 3 }));
const outcome = fc.oneof(
  fc.record({ mode: fc.constant('return'), value: jsonArb }),
  fc.record({ mode: fc.constant('return'), value: fc.record({ raw: jsonArb, tokenize }, { requiredKeys: [] }) }),
  fc.record({ mode: fc.constant('throw'), value: jsonArb }),
  fc.record({
    mode: fc.constant('sdk'),
    cls: fc.constantFrom(...SDK_ERRORS),
    value: fc.oneof(
      jsonArb,
      fc.record({ status: fc.oneof(intArb, fc.constantFrom(200, 302, 418, 599)), headers: jsonArb, body: jsonArb }),
    ),
  }),
);

let gateway: TestGateway;
let tenant: TestTenant;
let reactorId: string;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Puppeteer');
  reactorId = await createReactorWithCode(gateway, tenant.managementKey, PUPPET);
});
afterAll(async () => {
  await gateway?.close();
});

describe('whatever a formula returns or throws', () => {
  it('ends a react as a ReactorResponse or a typed Error', async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(outcome, async (args) => {
        const result = await gateway.gql<any>(REACT, { id: reactorId, args }, tenant.privateKey);
        expect(result.errors, JSON.stringify(args)).toBeUndefined();
        const react = result.data?.react;
        expect(react?.__typename === 'ReactorResponse' || typeof react?.code === 'string', JSON.stringify(args)).toBe(
          true,
        );
        seen.add(react.__typename === 'ReactorResponse' ? 'ReactorResponse' : react.code);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // Proof that the generator reaches both ends: results, the formula's own errors and tokenize refusals.
    expect([...seen]).toEqual(expect.arrayContaining(['ReactorResponse', 'REACTOR_RUNTIME_ERROR', 'BAD_REQUEST']));
  });

  it('ends a reactAsync as COMPLETED or FAILED', async () => {
    const requests = fc.sample(outcome, { numRuns: 15, seed: SEED });
    const ids: string[] = [];
    for (const args of requests) {
      const queued = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args }, tenant.privateKey);
      expect(queued.errors, JSON.stringify(args)).toBeUndefined();
      ids.push(queued.data.reactAsync.asyncReactorRequestId);
    }
    for (const [index, requestId] of ids.entries()) {
      const row = await until(`request ${requestId} finished`, async () => {
        const result = await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, tenant.privateKey);
        expect(result.errors, JSON.stringify(requests[index])).toBeUndefined();
        const status = result.data?.reactorResult?.status;
        return status === 'COMPLETED' || status === 'FAILED' ? result.data.reactorResult : undefined;
      });
      if (row.status === 'FAILED')
        expect(row.error.code, JSON.stringify(requests[index])).not.toBe('REACTOR_INTERRUPTED');
    }
  });
});
