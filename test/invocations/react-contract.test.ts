import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Environment, loadConfig } from '../../src/config.ts';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant, testEnvironment } from '../support/gateway.ts';
import { applicationKey, commit, createTransaction, readToken, rollback } from '../tokens/support.ts';

// No MAX_ARGS_BYTES here: the payload-limit tests below are about the default.
let gateway: TestGateway;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant();
});
afterAll(() => gateway?.close());

const MB = 1024 * 1024;
const SDK = "const sdk = require('@basis-theory/basis-theory-reactor-formulas-sdk-js');";

async function react(reactorId: string, args?: unknown, key = tenant.privateKey, tx?: string) {
  const result = await gateway.gql<any>(REACT, { id: reactorId, args, tx }, key);
  if (result.errors) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data?.react;
}

function reactorOf(code: string): Promise<string> {
  return createReactorWithCode(gateway, tenant.managementKey, code);
}

/** The id `react` reported for one tokenized value (the `tokens` block mirrors `tokenize`). */
function tokenIdOf(tokens: Record<string, any> | null | undefined, field: string): string {
  const value = tokens?.[field];
  const id = typeof value === 'string' ? value : value?.id;
  if (typeof id !== 'string') throw new Error(`no token id for ${field} in ${JSON.stringify(tokens)}`);
  return id;
}

describe('react with transactionId: the tokenize block is written inside the transaction', () => {
  const TOKENIZING = 'module.exports = async (req) => ({ raw: { ok: true }, tokenize: { secret: req.args.secret } });';

  it('creates tokens invisible outside the transaction until commit, then visible to all', async () => {
    const reactorId = await reactorOf(TOKENIZING);
    const tx = await createTransaction(gateway, tenant.privateKey);
    const result = await react(reactorId, { secret: 'pending-4242' }, tenant.privateKey, tx.id);
    expect(result).toMatchObject({ __typename: 'ReactorResponse', raw: { ok: true } });
    const tokenId = tokenIdOf(result.tokens, 'secret');

    expect(await readToken(gateway, tenant.privateKey, tokenId)).toBeNull();
    expect((await readToken(gateway, tenant.privateKey, tokenId, tx.id)).data).toBe('pending-4242');

    expect(await commit(gateway, tenant.privateKey, tx.id)).toMatchObject({ status: 'COMMITTED' });
    expect((await readToken(gateway, tenant.privateKey, tokenId)).data).toBe('pending-4242');
  });

  it('loses them on rollback', async () => {
    const reactorId = await reactorOf(TOKENIZING);
    const tx = await createTransaction(gateway, tenant.privateKey);
    const result = await react(reactorId, { secret: 'doomed-4242' }, tenant.privateKey, tx.id);
    const tokenId = tokenIdOf(result.tokens, 'secret');
    expect((await readToken(gateway, tenant.privateKey, tokenId, tx.id)).data).toBe('doomed-4242');

    expect(await rollback(gateway, tenant.privateKey, tx.id)).toMatchObject({ status: 'ROLLED_BACK' });
    expect(await readToken(gateway, tenant.privateKey, tokenId)).toBeNull();
    expect(await readToken(gateway, tenant.privateKey, tokenId, tx.id)).toBeNull();
  });

  it('takes the transaction from the BT-TRANSACTION-ID header when the argument is absent', async () => {
    const reactorId = await reactorOf(TOKENIZING);
    const tx = await createTransaction(gateway, tenant.privateKey);
    const answer = await gateway.gql<any>(REACT, { id: reactorId, args: { secret: 'via-header' } }, tenant.privateKey, {
      'bt-transaction-id': tx.id,
    });
    const tokenId = tokenIdOf(answer.data?.react.tokens, 'secret');
    expect(await readToken(gateway, tenant.privateKey, tokenId)).toBeNull();
    await commit(gateway, tenant.privateKey, tx.id);
    expect((await readToken(gateway, tenant.privateKey, tokenId)).data).toBe('via-header');
  });
});

describe('react permissions', () => {
  it('accepts a key holding only the legacy token:use, as it does one holding only reactor:invoke', async () => {
    const reactorId = await reactorOf('module.exports = async (req) => ({ raw: { echo: req.args.v } });');
    const legacy = await applicationKey(gateway, tenant, 'PRIVATE', ['token:use']);
    const modern = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:invoke']);
    expect(await react(reactorId, { v: 1 }, legacy)).toEqual({
      __typename: 'ReactorResponse',
      raw: { echo: 1 },
      tokens: null,
      logs: [],
    });
    expect((await react(reactorId, { v: 2 }, modern)).raw).toEqual({ echo: 2 });
  });

  it('refuses a key with neither permission with a FORBIDDEN GraphQL error (403) and runs nothing', async () => {
    // Would tokenize if it ran: no token may appear for the refused call.
    const reactorId = await reactorOf("module.exports = async () => ({ raw: 1, tokenize: { t: 'never' } });");
    const neither = await applicationKey(gateway, tenant, 'PRIVATE', ['token:read', 'token:create', 'reactor:read']);
    const before = await tokenCount();
    const result = await gateway.gql<any>(REACT, { id: reactorId }, neither);
    expect(result.data?.react ?? null).toBeNull();
    expect(result.errors).toHaveLength(1);
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', status: 403 });
    expect(await tokenCount()).toBe(before);
  });
});

async function tokenCount(): Promise<number> {
  const rows = await gateway.app.database.db
    .selectFrom('tokens')
    .select('id')
    .where('tenant_id', '=', tenant.tenantId)
    .execute();
  return rows.length;
}

describe('react payload limit', () => {
  it('defaults to the seeds’ 5 MB when MAX_ARGS_BYTES is not set', () => {
    expect(testEnvironment().MAX_ARGS_BYTES).toBeUndefined();
    expect(loadConfig(testEnvironment()).limits.maxArgsBytes).toBe(5 * MB);
    expect(gateway.app.config.limits.maxArgsBytes).toBe(5 * MB);
  });

  it('takes args of exactly 5 MB as JSON and refuses one byte more with BAD_REQUEST on `args`', async () => {
    const reactorId = await reactorOf('module.exports = async (req) => ({ raw: req.args.blob.length });');
    // `{"blob":"..."}`: 11 bytes around the string.
    const fits = 'x'.repeat(5 * MB - 11);
    expect(Buffer.byteLength(JSON.stringify({ blob: fits }))).toBe(5 * MB);
    expect(await react(reactorId, { blob: fits })).toMatchObject({ __typename: 'ReactorResponse', raw: fits.length });

    const over = await react(reactorId, { blob: `${fits}x` });
    expect(over).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST', status: 400 });
    expect(over.errors).toEqual({ args: [`are ${5 * MB + 1} bytes; the limit is ${5 * MB} bytes`] });
  });
});

describe('react: the remaining SDK errors end to end (DESIGN.md section 9)', () => {
  it('ServiceUnavailableError -> SERVICE_UNAVAILABLE 503 with its errors map', async () => {
    const reactorId = await reactorOf(
      `${SDK} module.exports = async () => { throw new sdk.ServiceUnavailableError('processor down'); };`,
    );
    expect(await react(reactorId)).toEqual({
      __typename: 'ServiceUnavailableError',
      code: 'SERVICE_UNAVAILABLE',
      status: 503,
      message: 'Service Unavailable',
      detail: null,
      errors: { error: ['processor down'] },
    });
  });

  it('InvalidReactorConfigurationError -> BAD_REQUEST 400 with its errors map passed through', async () => {
    const reactorId = await reactorOf(
      `${SDK} module.exports = async () => {
        throw new sdk.InvalidReactorConfigurationError({ SERVICE_API_KEY: ['is missing'], REGION: 'unknown' });
      };`,
    );
    expect(await react(reactorId)).toEqual({
      __typename: 'BadRequestError',
      code: 'BAD_REQUEST',
      status: 400,
      message: 'Invalid Reactor Configuration',
      detail: null,
      errors: { SERVICE_API_KEY: ['is missing'], REGION: ['unknown'] },
    });
  });

  it('CustomHttpResponseError -> REACTOR_RUNTIME_ERROR with its own status and the response as JSON detail', async () => {
    const reactorId = await reactorOf(
      `${SDK} module.exports = async () => {
        throw new sdk.CustomHttpResponseError({ status: 422, headers: { 'x-reason': 'declined' }, body: { declined: true } });
      };`,
    );
    const result = await react(reactorId);
    expect(result).toMatchObject({
      __typename: 'ReactorRuntimeError',
      code: 'REACTOR_RUNTIME_ERROR',
      status: 422,
      message: 'Reactor responded with HTTP 422',
      errors: null,
    });
    expect(JSON.parse(result.detail)).toEqual({
      status: 422,
      headers: { 'x-reason': 'declined' },
      body: { declined: true },
    });
  });
});

/** `code` as a reactor of a new tenant on a gateway of its own, started with `env` and closed after `use`. */
async function onOwnGateway<R>(
  env: Environment,
  code: string,
  use: (own: TestGateway, privateKey: string, reactorId: string) => Promise<R>,
): Promise<R> {
  const own = await startTestGateway({ env });
  try {
    const owner = await own.createTenant();
    const reactorId = await createReactorWithCode(own, owner.managementKey, code);
    return await use(own, owner.privateKey, reactorId);
  } finally {
    await own.close();
  }
}

describe('formula console output outside development', () => {
  it('is not returned when NODE_ENV is production, and is when EXPOSE_FORMULA_LOGS=true overrides it', async () => {
    const code = "module.exports = async () => { console.log('card', 4242); return { raw: 'done' }; };";
    for (const [env, logs] of [
      [{ NODE_ENV: 'production' }, null],
      [{ NODE_ENV: 'production', EXPOSE_FORMULA_LOGS: 'true' }, [{ level: 'log', message: 'card 4242' }]],
    ] as const) {
      const result = await onOwnGateway(env, code, (own, key, reactorId) =>
        own.gql<any>(REACT, { id: reactorId }, key),
      );
      expect(result.data?.react).toMatchObject({ raw: 'done', logs });
    }
  });
});

describe('formula console output on a failed run', () => {
  const REACT_WITH_ERROR_LOGS = `mutation($id: UUID!, $args: JSON) { react(id: $id, args: $args) {
    __typename ... on Error { code logs { level message } } } }`;

  async function failedRun(on: TestGateway, key: string, reactorId: string, args?: unknown) {
    const result = await on.gql<any>(REACT_WITH_ERROR_LOGS, { id: reactorId, args }, key);
    if (result.errors) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
    return result.data?.react;
  }

  it('comes with the error, whether the formula threw, threw an SDK error or ran out of time', async () => {
    const threw = await reactorOf(
      "module.exports = async () => { console.log('charging', 42); console.error('declined'); throw new Error('boom'); };",
    );
    expect(await failedRun(gateway, tenant.privateKey, threw)).toEqual({
      __typename: 'ReactorRuntimeError',
      code: 'REACTOR_RUNTIME_ERROR',
      logs: [
        { level: 'log', message: 'charging 42' },
        { level: 'error', message: 'declined' },
      ],
    });

    const refused = await reactorOf(
      `${SDK} module.exports = async () => { console.warn('bad card'); throw new sdk.InvalidPaymentMethodError(); };`,
    );
    expect(await failedRun(gateway, tenant.privateKey, refused)).toMatchObject({
      code: 'INVALID_PAYMENT_METHOD',
      logs: [{ level: 'warn', message: 'bad card' }],
    });

    const timedOut = await onOwnGateway(
      { REACT_TIMEOUT_MS: '500' },
      "module.exports = async () => { console.log('looping'); for (;;) {} };",
      failedRun,
    );
    expect(timedOut).toEqual({
      __typename: 'ReactorTimeoutError',
      code: 'REACTOR_TIMEOUT',
      logs: [{ level: 'log', message: 'looping' }],
    });
  }, 30_000);

  it('is null for an error that did not come from a formula run, and hidden where logs are', async () => {
    expect(await failedRun(gateway, tenant.privateKey, '00000000-0000-7000-8000-000000000000')).toEqual({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
      logs: null,
    });
    const hidden = await onOwnGateway(
      { NODE_ENV: 'production' },
      "module.exports = async () => { console.log('card 4242'); throw new Error('boom'); };",
      failedRun,
    );
    expect(hidden).toEqual({ __typename: 'ReactorRuntimeError', code: 'REACTOR_RUNTIME_ERROR', logs: null });
  });
});
