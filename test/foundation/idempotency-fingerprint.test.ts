import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as store from '../../src/idempotency/store.ts';
import { type RunningServer, startServer } from '../../src/server.ts';
import { rowAsText } from '../support/at-rest.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { allowTokenUpdates, CREATE_TOKEN } from '../tokens/support.ts';

// What a retry with an Idempotency-Key must match (src/idempotency/handler.ts): kept sealed, and holding the key's
// access, so neither the database nor a key whose access was cut reads more than it should.
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

async function post(body: string, headers: Record<string, string>) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

const cardRequest = (number: string) =>
  JSON.stringify({
    query: CREATE_TOKEN,
    variables: { input: { type: 'CARD', data: { number, expiration_month: 12, expiration_year: 2030 } } },
  });

/** The plain hash an earlier version stored: sha256 of the body and the transaction header. */
const plainHash = (body: string) => createHash('sha256').update(body).update('\n').digest('hex');

async function storedRow(key: string): Promise<Record<string, unknown>> {
  const { rows } = await sql<Record<string, unknown>>`select * from idempotent_requests
    where idempotency_key = ${key}`.execute(gateway.app.database.db);
  return rows[0]!;
}

describe('the fingerprint of an idempotent request', () => {
  it('is sealed: the database holds no hash of the body to try card numbers against', async () => {
    const body = cardRequest('4000056655665556');
    const first = await post(body, { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'sealed-1' });
    expect(first.body.data.createToken.__typename).toBe('Token');
    const row = await storedRow('sealed-1');
    expect(row.request_hash).toBeNull();
    const text = rowAsText(row);
    expect(text).not.toContain(plainHash(body));
    expect(text).not.toContain('4000056655665556');
    // Still compared: the same request replays, another is refused.
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'sealed-1' };
    expect((await post(body, headers)).headers.get('idempotent-replayed')).toBe('true');
    expect((await post(cardRequest('4242424242424242'), headers)).status).toBe(422);
  });

  it('is not replayed to a key whose permissions changed since', async () => {
    const own = await gateway.createTenant();
    const body = cardRequest('5200828282828210');
    const headers = { 'bt-api-key': own.privateKey, 'idempotency-key': 'access-1' };
    const first = await post(body, headers);
    expect(first.status).toBe(200);
    expect((await post(body, headers)).body).toEqual(first.body);
    await allowTokenUpdates(gateway, own);
    const retry = await post(body, headers);
    expect(retry).toMatchObject({
      status: 403,
      body: { errors: [{ extensions: { code: 'FORBIDDEN', status: 403 } }] },
    });
    expect(retry.body.errors[0].message).toMatch(/permissions or token containers changed/);
    expect(JSON.stringify(retry.body)).not.toContain(first.body.data.createToken.id);
  });

  it('belongs to one claim: one whose lease lapsed no longer completes or frees the key a retry has taken over', async () => {
    const db = gateway.app.database.db;
    const viewer = await gateway.gql<any>('{ viewer { application { id } } }', {}, tenant.privateKey);
    const claimOf = (token: string) => ({
      applicationId: viewer.data.viewer.application.id,
      tenantId: tenant.tenantId,
      key: 'lapsed-1',
      sealedFingerprint: Buffer.from('x'),
      token,
      leaseMs: 30_000,
      retentionMs: 60_000,
    });
    const [first, retry] = [claimOf('first'), claimOf('retry')];
    expect(await store.claim(db, first)).toBe(true);
    expect(await store.claim(db, retry)).toBe(false);
    // The first request's gateway lost its database for longer than the lease: the retry takes the key over.
    await sql`update idempotent_requests set locked_until = now() - interval '1 second'
      where idempotency_key = 'lapsed-1'`.execute(db);
    expect(await store.claim(db, retry)).toBe(true);
    const response = { httpStatus: 200, contentType: 'application/json', sealed: Buffer.from('first') };
    await store.complete(db, first, response);
    await store.release(db, first);
    expect(await storedRow('lapsed-1')).toMatchObject({ status: 'RUNNING', claim_token: 'retry', response: null });
    await store.complete(db, retry, { ...response, sealed: Buffer.from('retry') });
    const done = await storedRow('lapsed-1');
    expect(done).toMatchObject({ status: 'DONE', claim_token: 'retry' });
    expect(Buffer.from(done.response as Uint8Array).toString()).toBe('retry');
  });

  it('of a row stored before it was sealed is its plain hash, still compared', async () => {
    const body = cardRequest('4111111111111111');
    const headers = { 'bt-api-key': tenant.privateKey, 'idempotency-key': 'legacy-1' };
    const first = await post(body, headers);
    await sql`update idempotent_requests set sealed_fingerprint = null, request_hash = ${plainHash(body)}
      where idempotency_key = 'legacy-1'`.execute(gateway.app.database.db);
    const retry = await post(body, headers);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body).toEqual(first.body);
    expect((await post(cardRequest('4012888888881881'), headers)).status).toBe(422);
  });
});
