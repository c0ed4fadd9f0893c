import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../src/server.ts';
import { usingPostgres } from '../support/database.ts';
import { createReactorWithCode } from '../support/fixtures.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { CREATE_TOKEN, listAllTokens } from '../tokens/support.ts';

// Mutations sent with an Idempotency-Key (src/idempotency/handler.ts): a retry gets the first response, not a second
// run. Over a real port, as a client that lost a response would retry.
let gateway: TestGateway;
let server: RunningServer;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  server = await startServer(gateway.app, { port: 0, host: '127.0.0.1' });
  tenant = await gateway.createTenant();
});
afterAll(async () => {
  await server?.close();
  await gateway?.close();
});

async function post(body: unknown, headers: Record<string, string>) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

const createTokenRequest = (data: unknown) => ({
  query: CREATE_TOKEN,
  variables: { input: { type: 'TOKEN', data, metadata: { idempotency: 'test' } } },
});

async function tokensTagged(): Promise<number> {
  return (await listAllTokens(gateway, tenant.privateKey, { metadata: { idempotency: 'test' } })).tokens.length;
}

describe('a mutation with an Idempotency-Key', () => {
  it('runs once: a retry gets the first response again, marked as replayed', async () => {
    const before = await tokensTagged();
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'create-token-1' };
    const first = await post(createTokenRequest('once'), headers);
    expect(first.status).toBe(200);
    expect(first.body.data.createToken.__typename).toBe('Token');
    expect(first.headers.get('idempotent-replayed')).toBeNull();

    const retry = await post(createTokenRequest('once'), headers);
    expect(retry).toMatchObject({ status: 200, body: first.body });
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    // Basis Theory's header name works alike.
    const again = await post(createTokenRequest('once'), {
      'bt-api-key': tenant.privateKey,
      'bt-idempotency-key': 'create-token-1',
    });
    expect(again.body).toEqual(first.body);
    expect(await tokensTagged()).toBe(before + 1);
    // The stored response is sealed, not readable in the database.
    const { rows } = await sql<{ response: Uint8Array }>`select response from idempotent_requests
      where idempotency_key = 'create-token-1'`.execute(gateway.app.database.db);
    expect(Buffer.from(rows[0]!.response).toString('latin1')).not.toContain(first.body.data.createToken.id);
  });

  it('refuses the same key with another request (422), and runs a new key', async () => {
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'create-token-2' };
    const before = await tokensTagged();
    expect((await post(createTokenRequest('first'), headers)).status).toBe(200);
    const other = await post(createTokenRequest('second'), headers);
    expect(other).toMatchObject({
      status: 422,
      body: { errors: [{ extensions: { code: 'IDEMPOTENCY_KEY_REUSED', status: 422 } }] },
    });
    // The transaction header is part of the request: the same body in a transaction is another request.
    const tx = (await post({ query: 'mutation { createTransaction { id } }' }, { 'bt-api-key': tenant.privateKey }))
      .body.data.createTransaction.id;
    expect((await post(createTokenRequest('first'), { ...headers, 'bt-transaction-id': tx })).status).toBe(422);
    expect((await post(createTokenRequest('second'), { ...headers, 'idempotency-key': 'create-token-3' })).status).toBe(
      200,
    );
    expect(await tokensTagged()).toBe(before + 2);
  });

  it('answers 409 while the first request still runs, then the first response', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => { await new Promise((r) => setTimeout(r, 800)); return { raw: { at: Date.now() } }; };',
    );
    const request = {
      query: 'mutation($id: UUID!) { react(id: $id) { __typename ... on ReactorResponse { raw } } }',
      variables: { id: reactorId },
    };
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'slow-react' };
    const first = post(request, headers);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = await post(request, headers);
    expect(during).toMatchObject({
      status: 409,
      body: { errors: [{ extensions: { code: 'CONFLICT', status: 409 } }] },
    });
    expect(during.headers.get('retry-after')).toBe('1');
    const done = await first;
    expect(done.body.data.react.__typename).toBe('ReactorResponse');
    // The formula ran once: the retry gets the same `at`.
    expect((await post(request, headers)).body).toEqual(done.body);
  });

  it('keeps keys apart per application, and leaves queries, unknown keys and bad key values alone', async () => {
    const headers = { 'idempotency-key': 'shared-key' };
    const mine = await post(createTokenRequest('mine'), { ...headers, 'bt-api-key': tenant.privateKey });
    const other = await gateway.createTenant();
    const theirs = await post(createTokenRequest('theirs'), { ...headers, 'bt-api-key': other.privateKey });
    expect(theirs.body.data.createToken.id).not.toBe(mine.body.data.createToken.id);

    // A query is not remembered: each answer is its own (a token created in between shows).
    const count = { query: '{ tokens { totalCount } }' };
    const queryHeaders = { 'bt-api-key': other.privateKey, 'idempotency-key': 'a-query' };
    const firstCount = (await post(count, queryHeaders)).body.data.tokens.totalCount;
    await post(createTokenRequest('more'), { 'bt-api-key': other.privateKey });
    expect((await post(count, queryHeaders)).body.data.tokens.totalCount).toBe(firstCount + 1);

    // No valid API key: answered as without the header, and nothing stored under it.
    const anonymous = await post(createTokenRequest('x'), {
      'idempotency-key': 'anonymous',
      'bt-api-key': 'key_unknown',
    });
    expect(anonymous.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotent_requests
      where idempotency_key in ('anonymous', 'a-query')`.execute(gateway.app.database.db);
    expect(rows[0]!.n).toBe(0);

    const tooLong = await post(createTokenRequest('x'), {
      'bt-api-key': tenant.privateKey,
      'idempotency-key': 'k'.repeat(256),
    });
    expect(tooLong).toMatchObject({ status: 400, body: { errors: [{ extensions: { code: 'BAD_REQUEST' } }] } });
  });

  it('remembers a mutation posted as a GraphQL document or as a form, as one posted as JSON', async () => {
    const document = `mutation { createToken(input: { type: TOKEN, data: "posted", metadata: { idempotency: "test" } }) {
      __typename ... on Token { id } } }`;
    const bodies = {
      'application/graphql': document,
      'application/x-www-form-urlencoded': new URLSearchParams({ query: document }).toString(),
    };
    for (const [contentType, body] of Object.entries(bodies)) {
      const before = await tokensTagged();
      const headers = { 'content-type': contentType, 'bt-api-key': tenant.privateKey, 'idempotency-key': contentType };
      const first = await post(body, headers);
      expect(first.body.data.createToken.__typename).toBe('Token');
      const retry = await post(body, headers);
      expect(retry.body).toEqual(first.body);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(await tokensTagged()).toBe(before + 1);
    }
  });

  it('refuses a multipart body, which it could not remember, with 415 and a message, and runs nothing', async () => {
    const before = await tokensTagged();
    for (let attempt = 0; attempt < 2; attempt++) {
      const form = new FormData();
      form.append('operations', JSON.stringify(createTokenRequest('multipart')));
      form.append('map', '{}');
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'a-multipart-mutation' },
        body: form,
      });
      expect(response.status).toBe(415);
      expect(((await response.json()) as any).errors[0]).toMatchObject({
        message: expect.stringMatching(/multipart\/form-data is not accepted/),
        extensions: { code: 'UNSUPPORTED_MEDIA_TYPE', status: 415 },
      });
    }
    expect(await tokensTagged()).toBe(before);
  });

  it("refuses a mutation sent with the operator's key, which it could not remember, and runs nothing", async () => {
    const name = `idempotent-${Date.now()}`;
    const createTenant = {
      query: 'mutation($input: CreateTenantInput!) { createTenant(input: $input) { __typename } }',
      variables: { input: { name } },
    };
    const refused = await post(createTenant, { 'bt-api-key': ADMIN_KEY, 'idempotency-key': 'operator' });
    expect(refused).toMatchObject({ status: 400, body: { errors: [{ extensions: { code: 'BAD_REQUEST' } }] } });
    expect(refused.body.errors[0].message).toMatch(/operator's key/);
    const tenants = await gateway.gql<any>('{ tenants(first: 100) { edges { node { name } } } }', {}, ADMIN_KEY);
    expect(tenants.data?.tenants.edges.map((edge: any) => edge.node.name)).not.toContain(name);
    // Its queries are served as without the header.
    const query = await post(
      { query: '{ tenants(first: 1) { totalCount } }' },
      {
        'bt-api-key': ADMIN_KEY,
        'idempotency-key': 'operator-query',
      },
    );
    expect(query.body.data.tenants.totalCount).toBeGreaterThan(0);
  });

  it('lets a retry take over a key whose first request never answered (its gateway died) once its lease passed', async () => {
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'orphaned' };
    const db = gateway.app.database.db;
    // As a gateway that died mid-request leaves it: claimed, no response.
    await post(createTokenRequest('orphaned'), headers);
    await sql`update idempotent_requests set status = 'RUNNING', response = null
      where idempotency_key = 'orphaned'`.execute(db);
    expect((await post(createTokenRequest('orphaned'), headers)).status).toBe(409);
    await sql`update idempotent_requests set locked_until = now() - interval '1 second'
      where idempotency_key = 'orphaned'`.execute(db);
    const retry = await post(createTokenRequest('orphaned'), headers);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect((await post(createTokenRequest('orphaned'), headers)).headers.get('idempotent-replayed')).toBe('true');
  });

  it('lets a retry run again once the stored response has expired, and the sweep purges it', async () => {
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'expiring' };
    const before = await tokensTagged();
    const first = await post(createTokenRequest('expiring'), headers);
    const db = gateway.app.database.db;
    await sql`update idempotent_requests set expires_at = now() - interval '1 second'
      where idempotency_key = 'expiring'`.execute(db);
    const second = await post(createTokenRequest('expiring'), headers);
    expect(second.body.data.createToken.id).not.toBe(first.body.data.createToken.id);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(await tokensTagged()).toBe(before + 2);

    await sql`update idempotent_requests set expires_at = now() - interval '1 second'
      where idempotency_key = 'expiring'`.execute(db);
    expect(await gateway.app.idempotency.purgeExpired()).toBeGreaterThanOrEqual(1);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from idempotent_requests
      where idempotency_key = 'expiring'`.execute(db);
    expect(rows[0]!.n).toBe(0);
  });

  it('counts replays against the rate limit, which the endpoint does not see', async () => {
    const limited = await startTestGateway({ env: { RATE_LIMIT_PER_SECOND: '0.1', RATE_LIMIT_BURST: '2' } });
    const limitedServer = await startServer(limited.app, { port: 0, host: '127.0.0.1' });
    try {
      const own = await limited.createTenant();
      const send = () =>
        fetch(limitedServer.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'bt-api-key': own.privateKey, 'idempotency-key': 'limited' },
          body: JSON.stringify(createTokenRequest('limited')),
        });
      // The first run (counted by the endpoint) and one replay fill the burst of 2; the next replay waits.
      expect((await send()).status).toBe(200);
      expect((await send()).headers.get('idempotent-replayed')).toBe('true');
      const refused = await send();
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await limitedServer.close();
      await limited.close();
    }
  });

  it('does not keep a 429: once the rate limit lets it, the retry runs', async () => {
    const limited = await startTestGateway({ env: { RATE_LIMIT_PER_SECOND: '2', RATE_LIMIT_BURST: '1' } });
    const limitedServer = await startServer(limited.app, { port: 0, host: '127.0.0.1' });
    try {
      const own = await limited.createTenant();
      const send = (key: string) =>
        fetch(limitedServer.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'bt-api-key': own.privateKey, 'idempotency-key': key },
          body: JSON.stringify(createTokenRequest(key)),
        });
      expect((await send('first')).status).toBe(200);
      expect((await send('second')).status).toBe(429);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const retry = await send('second');
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      expect(((await retry.json()) as any).data.createToken.__typename).toBe('Token');
    } finally {
      await limitedServer.close();
      await limited.close();
    }
  });

  it('keeps the key of a mutation running longer than the lease: its retry waits (409), and nothing runs twice', async () => {
    const leased = await startTestGateway({ idempotencyLeaseMs: 1_000 });
    const leasedServer = await startServer(leased.app, { port: 0, host: '127.0.0.1' });
    try {
      const own = await leased.createTenant();
      const reactorId = await createReactorWithCode(
        leased,
        own.managementKey,
        "module.exports = async () => { await new Promise((r) => setTimeout(r, 1500)); return { raw: 1, tokenize: { t: 'made' } }; };",
      );
      // Two react fields, run one after the other: 3 s in all, three leases.
      const body = JSON.stringify({
        query: `mutation($id: UUID!) { a: react(id: $id) { __typename } b: react(id: $id) { __typename } }`,
        variables: { id: reactorId },
      });
      const send = () =>
        fetch(leasedServer.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'bt-api-key': own.privateKey, 'idempotency-key': 'long' },
          body,
        });
      const first = send();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect((await send()).status).toBe(409);
      expect((await first).status).toBe(200);
      expect((await send()).headers.get('idempotent-replayed')).toBe('true');
      const tokens = await leased.gql<any>('{ tokens { totalCount } }', {}, own.privateKey);
      expect(tokens.data?.tokens.totalCount).toBe(2);
    } finally {
      await leasedServer.close();
      await leased.close();
    }
  });

  it('streams what it does not remember: a subscription over server-sent events sent with the header', async () => {
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const abort = new AbortController();
    const response = await fetch(server.url, {
      method: 'POST',
      signal: abort.signal,
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        'bt-api-key': tenant.managementKey,
        'idempotency-key': 'a-subscription',
      },
      body: JSON.stringify({ query: 'subscription { reactorEvents { type reactor { id } } }' }),
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    let received = '';
    // The subscription is open (no event yet); a react then reaches the client while the stream goes on.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await gateway.gql('mutation($id: UUID!) { react(id: $id) { __typename } }', { id: reactorId }, tenant.privateKey);
    const deadline = Date.now() + 5_000;
    while (!received.includes('reactor.completed') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      received += Buffer.from(value).toString();
    }
    abort.abort();
    expect(received).toContain(reactorId);
    expect(received).toContain('reactor.completed');
  });

  it.runIf(usingPostgres)('runs once across instances: the same key sent to two at once runs on one', async () => {
    const second = await startTestGateway({ database: gateway.database });
    const secondServer = await startServer(second.app, { port: 0, host: '127.0.0.1' });
    try {
      const reactorId = await createReactorWithCode(
        gateway,
        tenant.managementKey,
        'module.exports = async () => { await new Promise((r) => setTimeout(r, 500)); return { raw: { at: Date.now() } }; };',
      );
      const send = (url: string) =>
        fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'bt-api-key': tenant.privateKey,
            'idempotency-key': 'two-instances',
          },
          body: JSON.stringify({ query: `mutation { react(id: "${reactorId}") { __typename } }` }),
        });
      const answers = await Promise.all([send(server.url), send(secondServer.url)]);
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409]);
    } finally {
      await secondServer.close();
      await second.close();
    }
  });
});
