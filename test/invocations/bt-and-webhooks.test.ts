import { createHmac } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { createReactorWithCode, createToken, REACT, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { applicationKey, createTransaction, expireNow, rollback } from '../tokens/support.ts';

let gateway: TestGateway;
let server: RunningServer;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { EGRESS_ALLOW: '127.0.0.1/32' } });
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  tenant = await gateway.createTenant();
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

async function applicationId(key: string): Promise<string> {
  return (await gateway.gql<any>('{ viewer { application { id } } }', {}, key)).data?.viewer.application.id;
}

describe('req.bt', () => {
  it("creates and reads tokens through the gateway as the reactor's application", async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      `module.exports = async (req) => {
        const created = await req.bt.tokens.create({ type: 'TOKEN', data: 'made-by-formula' });
        const read = await req.bt.tokens.retrieve(req.args.existing);
        return { raw: { createdId: created.id, existing: read.data } };
      };`,
      { applicationId: await applicationId(tenant.privateKey) },
    );
    const existing = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'stored-before' });
    const result = (await gateway.gql<any>(REACT, { id: reactorId, args: { existing } }, tenant.privateKey)).data
      ?.react;
    expect(result.raw.existing).toBe('stored-before');
    const made = await gateway.gql<any>(
      'query($id: UUID!) { token(id: $id) { data } }',
      { id: result.raw.createdId },
      tenant.privateKey,
    );
    expect(made.data?.token.data).toBe('made-by-formula');
  });

  it('takes token types in lower case, as tokenize blocks do, and refuses input that does not fit in plain words', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      `module.exports = async (req) => {
        const created = await req.bt.tokens.create({ type: 'token', data: 'typed in lower case' });
        const refusal = async (input) => {
          try { await req.bt.tokens.create(input); return 'created'; }
          catch (e) { return { code: e.code, status: e.status, message: e.message, errors: e.errors }; }
        };
        if (req.args.uncaught) await req.bt.tokens.create({ type: 'nonsense', data: 'x' });
        return { raw: {
          createdId: created.id,
          unknownType: await refusal({ type: 'nonsense', data: 'x' }),
          noType: await refusal({ data: 'x' }),
        } };
      };`,
      { applicationId: await applicationId(tenant.privateKey) },
    );
    const raw = (await gateway.gql<any>(REACT, { id: reactorId, args: {} }, tenant.privateKey)).data?.react.raw;
    const made = await gateway.gql<any>(
      'query($id: UUID!) { token(id: $id) { type data } }',
      { id: raw.createdId },
      tenant.privateKey,
    );
    expect(made.data?.token).toEqual({ type: 'TOKEN', data: 'typed in lower case' });
    expect(raw.unknownType).toEqual({
      code: 'BAD_REQUEST',
      status: 400,
      message: 'req.bt.tokens.create refused its input: type is not valid',
      errors: { type: ['is not valid'] },
    });
    expect(raw.noType).toEqual({
      code: 'BAD_REQUEST',
      status: 400,
      message: 'req.bt.tokens.create refused its input: type is required',
      errors: { type: ['is required'] },
    });
    // Not caught, it fails the run with the same words, and nothing of GraphQL's.
    const failed = (await gateway.gql<any>(REACT, { id: reactorId, args: { uncaught: true } }, tenant.privateKey)).data
      ?.react;
    expect(failed).toMatchObject({
      code: 'REACTOR_RUNTIME_ERROR',
      message: 'req.bt.tokens.create refused its input: type is not valid',
    });
  });

  it('tokenizes a nested request, all or nothing, as the tokenize mutation does', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      `module.exports = async (req) => {
        const made = await req.bt.tokenize({ email: req.args.email, card: { type: 'token', data: 'x', metadata: { k: 'v' } } });
        let refused;
        try { await req.bt.tokenize({ card: { type: 'card', data: { number: '1' } } }); }
        catch (e) { refused = { code: e.code, status: e.status, errors: Object.keys(e.errors ?? {}) }; }
        return { raw: { made, refused } };
      };`,
      { applicationId: await applicationId(tenant.privateKey) },
    );
    const raw = (await gateway.gql<any>(REACT, { id: reactorId, args: { email: 'a@b.c' } }, tenant.privateKey)).data
      ?.react.raw;
    expect(raw.refused).toEqual({
      code: 'BAD_REQUEST',
      status: 400,
      errors: ['request.card.data.number', 'request.card.data.expiration_month', 'request.card.data.expiration_year'],
    });
    const read = 'query($id: UUID!) { token(id: $id) { data metadata } }';
    expect((await gateway.gql<any>(read, { id: raw.made.email }, tenant.privateKey)).data?.token.data).toBe('a@b.c');
    expect((await gateway.gql<any>(read, { id: raw.made.card }, tenant.privateKey)).data?.token).toEqual({
      data: 'x',
      metadata: { k: 'v' },
    });
  });

  it('is null for a reactor without an application', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => ({ raw: req.bt === null });',
    );
    expect((await gateway.gql<any>(REACT, { id: reactorId }, tenant.privateKey)).data?.react.raw).toBe(true);
  });

  it('updates and deletes tokens when the application may, and says why not when it may not', async () => {
    const code = `module.exports = async (req) => {
      const attempt = async (call) => {
        try { return await call(); } catch (e) { return { code: e.code, status: e.status }; }
      };
      return { raw: {
        updated: await attempt(() => req.bt.tokens.update(req.args.id, { data: { b: 2 }, metadata: { seen: true } })),
        deleted: await attempt(() => req.bt.tokens.delete(req.args.other)),
        missing: await attempt(() => req.bt.tokens.update('01a204cc-a83d-77b0-9658-e28eab878300', { data: 'x' })),
      } };
    };`;
    const writer = await applicationKey(gateway, tenant, 'PRIVATE', ['token:update', 'token:delete', 'reactor:invoke']);
    const mayWrite = await createReactorWithCode(gateway, tenant.managementKey, code, {
      applicationId: await applicationId(writer),
    });
    const reader = await applicationKey(gateway, tenant, 'PRIVATE', ['token:read']);
    const mayNot = await createReactorWithCode(gateway, tenant.managementKey, code, {
      applicationId: await applicationId(reader),
    });
    const token = () => createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: { a: 1 } });
    const [id, other] = [await token(), await token()];

    const refused = (await gateway.gql<any>(REACT, { id: mayNot, args: { id, other } }, tenant.privateKey)).data?.react
      .raw;
    expect(refused.updated).toEqual({ code: 'FORBIDDEN', status: 403 });
    expect(refused.deleted).toEqual({ code: 'FORBIDDEN', status: 403 });
    const read = 'query($id: UUID!) { token(id: $id) { data metadata } }';
    expect((await gateway.gql<any>(read, { id }, tenant.privateKey)).data?.token).toEqual({
      data: { a: 1 },
      metadata: {},
    });
    expect((await gateway.gql<any>(read, { id: other }, tenant.privateKey)).data?.token).not.toBeNull();

    const done = (await gateway.gql<any>(REACT, { id: mayWrite, args: { id, other } }, tenant.privateKey)).data?.react
      .raw;
    expect(done.updated).toMatchObject({ id, type: 'TOKEN', metadata: { seen: true } });
    expect(done.deleted).toBeNull();
    expect(done.missing).toEqual({ code: 'NOT_FOUND', status: 404 });
    expect((await gateway.gql<any>(read, { id }, tenant.privateKey)).data?.token).toEqual({
      data: { a: 1, b: 2 },
      metadata: { seen: true },
    });
    expect((await gateway.gql<any>(read, { id: other }, tenant.privateKey)).data?.token).toBeNull();
  });
});

/**
 * A new tenant's reactor whose formula first leaves a trace (a token made through req.bt), then waits `req.args.ms`
 * and returns `req.args.output` (or `{ secret: 'out' }`) to tokenize; `tokens()` counts the tenant's tokens.
 */
async function witnessedReactor() {
  const own = await gateway.createTenant();
  const reactorId = await createReactorWithCode(
    gateway,
    own.managementKey,
    `module.exports = async (req) => {
      await req.bt.tokens.create({ type: 'TOKEN', data: 'the formula ran' });
      await new Promise((r) => setTimeout(r, req.args.ms ?? 0));
      return { raw: { ran: true }, tokenize: req.args.output ?? { secret: 'out' } };
    };`,
    { applicationId: await applicationId(own.privateKey) },
  );
  const tokens = async () =>
    (await gateway.gql<any>('{ tokens { totalCount } }', {}, own.privateKey)).data?.tokens.totalCount;
  return { own, reactorId, tokens };
}

describe('react with a transaction that cannot take the tokenized output', () => {
  it('is refused before the formula runs (its side effects, here a token made through req.bt, never happen)', async () => {
    const { own, reactorId, tokens } = await witnessedReactor();
    const rolledBack = await createTransaction(gateway, own.privateKey);
    await rollback(gateway, own.privateKey, rolledBack.id);
    const refusals = [
      { tx: '00000000-0000-4000-8000-00000000000f', __typename: 'NotFoundError', code: 'NOT_FOUND', status: 404 },
      { tx: rolledBack.id, __typename: 'ConflictError', code: 'CONFLICT', status: 409 },
    ];
    for (const { tx, ...refusal } of refusals) {
      const answer = (await gateway.gql<any>(REACT, { id: reactorId, args: {}, tx }, own.privateKey)).data?.react;
      expect(answer).toMatchObject(refusal);
    }
    expect(await tokens()).toBe(0);
    // The same reactor with no transaction runs, and its side effect shows.
    const ran = (await gateway.gql<any>(REACT, { id: reactorId, args: {} }, own.privateKey)).data?.react;
    expect(ran.raw).toEqual({ ran: true });
    expect(await tokens()).toBe(2);
  });
});

describe('react: an error storing the tokenize output, after the run', () => {
  it('says the reactor ran: a transaction that expired during the run, an invalid output', async () => {
    const { own, reactorId, tokens } = await witnessedReactor();
    const tx = await createTransaction(gateway, own.privateKey);
    const answer = gateway.gql<any>(
      REACT,
      { id: reactorId, args: { ms: 3_000, output: 'x' }, tx: tx.id },
      own.privateKey,
    );
    // The formula has run past the check before the run: its token is there. The transaction expires now.
    await until('the formula to run', async () => ((await tokens()) === 1 ? true : undefined), 10_000);
    await expireNow(gateway, 'transactions', tx.id);
    expect((await answer).data?.react).toMatchObject({
      __typename: 'ConflictError',
      code: 'CONFLICT',
      message:
        'The reactor ran, but its result is lost: The transaction is EXPIRED; only an OPEN transaction can take writes.',
    });

    const invalid = await gateway.gql<any>(
      REACT,
      { id: reactorId, args: { ms: 0, output: { card: { type: 'card', data: { number: '1' } } } } },
      own.privateKey,
    );
    expect(invalid.data?.react).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
    expect(invalid.data?.react.message).toMatch(/^The reactor ran, but its result is lost: /);
    expect(Object.keys(invalid.data?.react.errors)).toContain('tokenize.card.data.number');
  });
});

describe('callbackUrl', () => {
  it('POSTs the async result, signed with the tenant secret', async () => {
    const received: { body: string; signature: string; timestamp: string }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        received.push({
          body,
          signature: String(req.headers['bt-signature']),
          timestamp: String(req.headers['bt-timestamp']),
        });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = receiver.address() as { port: number };
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        'module.exports = async () => ({ raw: { paid: true } });',
      );
      const receipt = await gateway.gql<any>(
        REACT_ASYNC,
        { id: reactorId, callbackUrl: `http://127.0.0.1:${port}/hook` },
        tenant.privateKey,
      );
      const requestId = receipt.data?.reactAsync.asyncReactorRequestId;
      await until('the callback', () => (received.length > 0 ? true : undefined), 10_000);
      expect(received).toHaveLength(1);
      const delivery = received[0]!;
      expect(JSON.parse(delivery.body)).toMatchObject({ id: requestId, status: 'COMPLETED', raw: { paid: true } });

      const secret = (await gateway.gql<any>('{ webhookSigningSecret }', {}, tenant.managementKey)).data
        ?.webhookSigningSecret;
      const expected = createHmac('sha256', Buffer.from(secret, 'hex'))
        .update(`${delivery.timestamp}.${delivery.body}`)
        .digest('hex');
      expect(delivery.signature).toBe(expected);
      const other = await gateway.createTenant();
      expect(
        (await gateway.gql<any>('{ webhookSigningSecret }', {}, other.managementKey)).data?.webhookSigningSecret,
      ).not.toBe(secret);
    } finally {
      receiver.close();
    }
  });

  it('refuses a callbackUrl that is not an http(s) URL', async () => {
    const reactorId = await createReactorWithCode(gateway, tenant.managementKey, 'module.exports = async () => ({});');
    const result = await gateway.gql<any>(
      REACT_ASYNC,
      { id: reactorId, callbackUrl: 'file:///etc/passwd' },
      tenant.privateKey,
    );
    expect(result.data?.reactAsync).toMatchObject({ code: 'BAD_REQUEST' });
  });
});
