import { type KyselyPlugin, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import type { TokenRow } from '../../src/tokens/tables.ts';
import { createTokenCache } from '../../src/tokens/token-cache.ts';
import { usingPostgres } from '../support/database.ts';
import { createReactorWithCode, createToken, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import {
  ALL_TOKEN_PERMISSIONS,
  applicationKey,
  commit,
  createTransaction,
  deleteToken,
  updateToken,
} from './support.ts';

/**
 * The detokenization cache (src/tokens/token-cache.ts): a token used again costs no query, and no change to a token
 * (delete, delete in a committed transaction, expiry, a delete by SQL or by another instance) is ever hidden by it.
 */

// Counts the queries that read the tokens table, through the real app (AppOptions.queryPlugin).
let tokenReads = 0;
const countTokenReads: KyselyPlugin = {
  transformQuery: (args) => {
    const node = args.node as { kind: string; from?: { froms: { table?: { identifier?: { name?: string } } }[] } };
    if (node.kind === 'SelectQueryNode' && node.from?.froms[0]?.table?.identifier?.name === 'tokens') tokenReads++;
    return args.node;
  },
  transformResult: async (args) => args.result,
};

const ECHO = 'module.exports = async (req) => ({ raw: req.args });';

let gateway: TestGateway;
let tenant: TestTenant;
let reactorId: string;
beforeAll(async () => {
  gateway = await startTestGateway({ queryPlugin: countTokenReads });
  tenant = await gateway.createTenant();
  reactorId = await createReactorWithCode(gateway, tenant.managementKey, ECHO);
});
afterAll(() => gateway?.close());

async function react(via: TestGateway, id: string, key = tenant.privateKey, tx?: string) {
  const result = await via.gql<any>(REACT, { id: reactorId, args: { secret: `{{ ${id} }}` }, tx }, key);
  return result.data?.react;
}

/** Whether `check` comes true within 5 s (the change reaches the cache through the database's notification). */
async function eventually(check: () => Promise<boolean>): Promise<boolean> {
  return until('the change', async () => ((await check()) ? true : undefined), 5_000);
}

describe('token cache: a token used again', () => {
  it('is read from the database once, then detokenized from the cache', async () => {
    const id = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'cached secret' });
    const before = tokenReads;
    expect((await react(gateway, id)).raw).toEqual({ secret: 'cached secret' });
    expect(tokenReads - before).toBe(1);
    for (let i = 0; i < 3; i++) expect((await react(gateway, id)).raw).toEqual({ secret: 'cached secret' });
    expect(tokenReads - before).toBe(1);
  });

  it("never serves one tenant's cached token to another tenant", async () => {
    const id = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'tenant A only' });
    expect((await react(gateway, id)).raw).toEqual({ secret: 'tenant A only' });
    const other = await gateway.createTenant('Other tenant');
    const otherReactor = await createReactorWithCode(gateway, other.managementKey, ECHO);
    const result = await gateway.gql<any>(
      REACT,
      { id: otherReactor, args: { secret: `{{ ${id} }}` } },
      other.privateKey,
    );
    expect(result.data?.react).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
  });

  it('does not use the cache inside a transaction (the transaction may hold the token for deletion)', async () => {
    const id = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'held' });
    expect((await react(gateway, id)).raw).toEqual({ secret: 'held' });
    const tx = await createTransaction(gateway, tenant.privateKey);
    await deleteToken(gateway, tenant.privateKey, id, tx.id);
    // Hidden inside the transaction, still visible (and cached) outside it until the commit.
    expect(await react(gateway, id, tenant.privateKey, tx.id)).toMatchObject({ __typename: 'BadRequestError' });
    expect((await react(gateway, id)).raw).toEqual({ secret: 'held' });
    await commit(gateway, tenant.privateKey, tx.id);
    // The commit dropped it from this instance's cache before it answered.
    expect(await react(gateway, id)).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
  });
});

describe('token cache: changes are never hidden', () => {
  it('a deleteToken through this instance is seen by the very next react', async () => {
    const id = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'to delete' });
    expect((await react(gateway, id)).raw).toEqual({ secret: 'to delete' });
    await deleteToken(gateway, tenant.privateKey, id);
    expect(await react(gateway, id)).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
  });

  it('a delete by SQL reaches the cache through the trigger and LISTEN/NOTIFY', async () => {
    const id = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'deleted by hand' });
    expect((await react(gateway, id)).raw).toEqual({ secret: 'deleted by hand' });
    await sql`delete from tokens where id = ${id}`.execute(gateway.app.database.db);
    const refused = await eventually(async () => (await react(gateway, id))?.__typename === 'BadRequestError');
    expect(refused).toBe(true);
  });

  it('an expired token is refused although it was cached', async () => {
    const expiresAt = new Date(Date.now() + 2_500).toISOString();
    const id = await createToken(gateway, tenant.privateKey, {
      type: 'TOKEN',
      data: 'short-lived',
      expiresAt,
    } as never);
    expect((await react(gateway, id)).raw).toEqual({ secret: 'short-lived' });
    await new Promise((resolve) => setTimeout(resolve, 2_600));
    expect(await react(gateway, id)).toMatchObject({ __typename: 'BadRequestError', code: 'BAD_REQUEST' });
  });

  it('a read that raced with a change notification is not cached; an invalidation in any case is seen', async () => {
    const cache = await createTokenCache(gateway.app.database.notifier, createLogger('silent'), { max: 10 });
    try {
      const row = { id: '01a20559-4ecf-7733-b4b5-ecad46cee486', tenant_id: tenant.tenantId, transaction_id: null };
      const startedAt = cache.generation;
      await sql`select pg_notify('token_changes', ${row.id})`.execute(gateway.app.database.db);
      expect(await eventually(async () => cache.generation !== startedAt)).toBe(true);
      cache.fill(startedAt, [{ ...row, expires_at: null } as unknown as TokenRow]);
      expect(cache.get(tenant.tenantId, row.id)).toBeUndefined();
      cache.fill(cache.generation, [{ ...row, expires_at: null } as unknown as TokenRow]);
      expect(cache.get(tenant.tenantId, row.id)).toBeDefined();
      expect(cache.get('00000000-0000-7000-8000-000000000000', row.id)).toBeUndefined();
      // A delete or update given the id in upper case drops the entry too, before any notification.
      cache.invalidate(tenant.tenantId, [row.id.toUpperCase()]);
      expect(cache.get(tenant.tenantId, row.id)).toBeUndefined();
    } finally {
      await cache.close();
    }
  });
});

// Two instances on one Postgres (PGlite is single-process).
describe.runIf(usingPostgres)('token cache: across instances', () => {
  let other: TestGateway;
  beforeAll(async () => {
    other = await startTestGateway({ database: gateway.database });
  });
  afterAll(() => other?.close());

  it("a delete through one instance reaches the other instance's cache", async () => {
    const id = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: 'on both' });
    expect((await react(gateway, id)).raw).toEqual({ secret: 'on both' });
    expect((await react(other, id)).raw).toEqual({ secret: 'on both' });
    await deleteToken(other, tenant.privateKey, id);
    const refused = await eventually(async () => (await react(gateway, id))?.__typename === 'BadRequestError');
    expect(refused).toBe(true);
  });

  it("an update through one instance, and one committed in a transaction, reach the other instance's cache", async () => {
    const key = await applicationKey(gateway, tenant, 'PRIVATE', ALL_TOKEN_PERMISSIONS);
    const id = await createToken(gateway, key, { type: 'TOKEN', data: 'v1' });
    expect((await react(gateway, id, key)).raw).toEqual({ secret: 'v1' });
    await updateToken(other, key, id, { data: 'v2' });
    expect(await eventually(async () => (await react(gateway, id, key)).raw.secret === 'v2')).toBe(true);

    const tx = await createTransaction(other, key);
    await updateToken(other, key, id, { data: 'v3' }, tx.id);
    expect((await react(gateway, id, key)).raw).toEqual({ secret: 'v2' });
    await commit(other, key, tx.id);
    expect(await eventually(async () => (await react(gateway, id, key)).raw.secret === 'v3')).toBe(true);
  });
});
