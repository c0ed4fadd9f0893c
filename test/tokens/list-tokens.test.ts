import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestGateway, type TestGateway } from '../support/gateway.ts';
import {
  applicationKey,
  CARD_NUMBER,
  card,
  commit,
  createToken,
  createTransaction,
  data,
  deleteToken,
  expireNow,
  LIST_TOKENS,
  listAllTokens,
  rollback,
  tenantWithTokenKey,
  updateToken,
} from './support.ts';

// The `tokens` list: keyset pages of what `token(id)` would read, narrowed by type, fingerprint, metadata, container.
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.close());

async function tokenId(key: string, input: Record<string, unknown>, tx?: string): Promise<string> {
  return (await createToken(gateway, key, input, tx)).id;
}

async function ids(key: string, filters: Record<string, unknown> = {}): Promise<string[]> {
  return (await listAllTokens(gateway, key, filters)).tokens.map((token) => token.id);
}

async function page(key: string, variables: Record<string, unknown>): Promise<any> {
  return data(await gateway.gql(LIST_TOKENS, variables, key), 'tokens');
}

describe('tokens', () => {
  it("pages through the tenant's tokens oldest first, with their data, and never another tenant's", async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const other = await tenantWithTokenKey(gateway);
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push(await tokenId(key, { type: 'TOKEN', data: `secret-${i}` }));
    await tokenId(other.key, { type: 'TOKEN', data: 'bystander' });

    const first = await page(key, { first: 2 });
    expect(first.edges.map((edge: any) => edge.node.id)).toEqual(created.slice(0, 2));
    expect(first.edges.map((edge: any) => edge.node.data)).toEqual(['secret-0', 'secret-1']);
    expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    expect(first.totalCount).toBe(5);
    const second = await page(key, { first: 2, after: first.pageInfo.endCursor });
    expect(second.edges.map((edge: any) => edge.node.id)).toEqual(created.slice(2, 4));
    expect(second.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    const third = await page(key, { first: 2, after: second.pageInfo.endCursor });
    expect(third.edges.map((edge: any) => edge.node.id)).toEqual(created.slice(4));
    expect(third.pageInfo.hasNextPage).toBe(false);
    expect(await ids(other.key)).toHaveLength(1);
    // The whole token, as token(id) reads it.
    expect(first.edges[0].node).toMatchObject({ type: 'TOKEN', containers: ['/general/high/'], metadata: {} });
  });

  it('narrows by ids, type, fingerprint, metadata and container, all together, and counts what matches', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const visa = await tokenId(key, {
      type: 'CARD',
      data: card(),
      metadata: { customer: 'c1', vip: true, tier: 2 },
    });
    const visaAgain = await tokenId(key, {
      type: 'CARD',
      data: card(),
      metadata: { customer: 'c2', vip: false, tier: 2 },
      containers: ['/pci/low/'],
    });
    const otherCard = await tokenId(key, {
      type: 'CARD',
      data: card({ number: '5555555555554444' }),
      metadata: { customer: 'c1', note: null },
    });
    const generic = await tokenId(key, {
      type: 'TOKEN',
      data: CARD_NUMBER,
      metadata: { customer: 'c1' },
      containers: ['/pcix/'],
    });
    const read = data(await gateway.gql(LIST_TOKENS, { type: 'CARD' }, key), 'tokens');
    const fingerprint = read.edges.find((edge: any) => edge.node.id === visa).node.fingerprint;

    expect(await ids(key, { type: 'CARD' })).toEqual([visa, visaAgain, otherCard]);
    expect(await ids(key, { type: 'BANK' })).toEqual([]);
    // Equal data of a type has one fingerprint; the same number as a TOKEN is other data.
    expect(await ids(key, { fingerprint })).toEqual([visa, visaAgain]);
    expect(await ids(key, { metadata: { customer: 'c1' } })).toEqual([visa, otherCard, generic]);
    expect(await ids(key, { metadata: { customer: 'c1', vip: true } })).toEqual([visa]);
    expect(await ids(key, { metadata: { tier: 2 } })).toEqual([visa, visaAgain]);
    expect(await ids(key, { metadata: { vip: false } })).toEqual([visaAgain]);
    expect(await ids(key, { metadata: { note: null } })).toEqual([otherCard]);
    expect(await ids(key, { metadata: { customer: 'c3' } })).toEqual([]);
    expect(await ids(key, { metadata: {} })).toHaveLength(4);
    // A container matches itself and what lies below it, not a path that merely starts with the same letters.
    expect(await ids(key, { container: '/pci/' })).toEqual([visa, visaAgain, otherCard]);
    expect(await ids(key, { container: '/pci/low/' })).toEqual([visaAgain]);
    expect(await ids(key, { container: '/pcix/' })).toEqual([generic]);
    expect(await ids(key, { ids: [generic, visa, generic.toUpperCase()] })).toEqual([visa, generic]);
    expect(await ids(key, { ids: [] })).toEqual([]);
    const together = { type: 'CARD', fingerprint, metadata: { customer: 'c2' }, container: '/pci/' };
    expect(await listAllTokens(gateway, key, together)).toMatchObject({ totalCount: 1, tokens: [{ id: visaAgain }] });
  });

  it('lists inside a transaction what that transaction sees, and outside it what everyone sees', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const kept = await tokenId(key, { type: 'TOKEN', data: 'kept', metadata: { tag: 'old' } });
    const doomed = await tokenId(key, { type: 'TOKEN', data: 'doomed' });
    const tx = (await createTransaction(gateway, key)).id;
    const pending = await tokenId(key, { type: 'TOKEN', data: 'pending' }, tx);
    await deleteToken(gateway, key, doomed, tx);
    await updateToken(gateway, key, kept, { data: 'changed', metadata: { tag: 'new' } }, tx);

    expect(await ids(key)).toEqual([kept, doomed]);
    expect(await ids(key, { tx })).toEqual([kept, pending]);
    // The filter applies to what the reader sees: the pending metadata inside, the committed one outside.
    expect(await ids(key, { tx, metadata: { tag: 'new' } })).toEqual([kept]);
    expect(await ids(key, { metadata: { tag: 'new' } })).toEqual([]);
    expect(await ids(key, { metadata: { tag: 'old' } })).toEqual([kept]);
    const inside = await listAllTokens(gateway, key, { tx });
    expect(inside.tokens.map((token) => token.data)).toEqual(['changed', 'pending']);
    expect(inside.totalCount).toBe(2);
    // The header sets the transaction as the argument does.
    const viaHeader = await gateway.gql<any>(LIST_TOKENS, {}, key, { 'BT-TRANSACTION-ID': tx });
    expect(viaHeader.data?.tokens.edges.map((edge: any) => edge.node.id)).toEqual([kept, pending]);

    await commit(gateway, key, tx);
    expect(await ids(key)).toEqual([kept, pending]);
    // A finished transaction's id reads as committed data, as token(id) does.
    expect(await ids(key, { tx })).toEqual([kept, pending]);
    expect(await ids(key, { metadata: { tag: 'new' } })).toEqual([kept]);

    const rolledBack = (await createTransaction(gateway, key)).id;
    await tokenId(key, { type: 'TOKEN', data: 'never' }, rolledBack);
    await rollback(gateway, key, rolledBack);
    expect(await ids(key, { tx: rolledBack })).toEqual([kept, pending]);
  });

  it('leaves out expired tokens', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const live = await tokenId(key, { type: 'TOKEN', data: 'live' });
    const expiring = await tokenId(key, { type: 'TOKEN', data: 'expiring' });
    await expireNow(gateway, 'tokens', expiring);
    expect(await listAllTokens(gateway, key)).toMatchObject({ totalCount: 1, tokens: [{ id: live }] });
  });

  it('needs token:read', async () => {
    const { tenant } = await tenantWithTokenKey(gateway);
    const writer = await applicationKey(gateway, tenant, 'PRIVATE', ['token:create', 'token:use']);
    const browser = await applicationKey(gateway, tenant, 'PUBLIC', ['token:create']);
    for (const key of [writer, browser]) {
      const refused = await gateway.gql(LIST_TOKENS, {}, key);
      expect(errorCode(refused)).toBe('FORBIDDEN');
      expect(refused.data?.tokens ?? null).toBeNull();
    }
    expect(errorCode(await gateway.gql(LIST_TOKENS, {}, null))).toBe('UNAUTHENTICATED');
  });

  it('refuses a bad filter or page as BAD_REQUEST naming the field', async () => {
    const { key } = await tenantWithTokenKey(gateway);
    const cases: [Record<string, unknown>, string][] = [
      [{ container: 'pci' }, 'container'],
      [{ container: '/PCI/' }, 'container'],
      [{ metadata: { nested: { a: 1 } } }, 'metadata.nested'],
      [{ fingerprint: 'a\u0000b' }, 'fingerprint'],
      [{ fingerprint: 'x'.repeat(201) }, 'fingerprint'],
      [{ first: 0 }, 'first'],
      [{ first: 101 }, 'first'],
      [{ ids: Array.from({ length: 101 }, (_, i) => `01a204cc-a83d-77b0-9658-${String(i).padStart(12, '0')}`) }, 'ids'],
      [{ after: 'not-a-cursor' }, 'after'],
    ];
    for (const [variables, field] of cases) {
      const response = await gateway.gql(LIST_TOKENS, variables, key);
      expect(errorCode(response), JSON.stringify(variables)).toBe('BAD_REQUEST');
      expect(Object.keys(response.errors?.[0]?.extensions?.errors ?? {}), JSON.stringify(variables)).toContain(field);
    }
  });
});
