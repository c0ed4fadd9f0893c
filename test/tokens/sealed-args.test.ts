import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadRequestError, ForbiddenError } from '../../src/errors.ts';
import { openSealedArgs, type SealedArgs, TokenDecryptionError } from '../../src/tokens/sealing.ts';
import { createVault } from '../../src/tokens/vault.ts';
import { createReactorWithCode, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { applicationKey, CARD_NUMBER, card, createToken, principalFor } from './support.ts';

/**
 * Deferred detokenization: `react` sends plain `{{ <id> }}` tokens to the worker thread still sealed and they are
 * opened there (src/tokens/sealing.ts). The result must be what main-thread detokenization gives, and every check
 * must still happen before the formula runs.
 */

describe('openSealedArgs', () => {
  const vault = createVault(randomBytes(32));
  const tenantId = randomUUID();

  function sealedOf(values: unknown[], sites: SealedArgs['sites']): SealedArgs {
    const tokens = values.map((value) => {
      const id = randomUUID();
      return { id, data: vault.encrypt(tenantId, id, JSON.stringify(value)).toString('latin1') };
    });
    return { tenantId, key: vault.dataKey(tenantId), tokens, sites };
  }

  it('puts each token where its expression was: nested objects, arrays and the root', () => {
    const args = { card: '{{ a }}', list: [1, '{{ b }}'], deep: { again: '{{ a }}' }, kept: 'x' };
    const sealed = sealedOf(
      [{ number: CARD_NUMBER }, 'second'],
      [
        { path: ['card'], token: 0 },
        { path: ['list', 1], token: 1 },
        { path: ['deep', 'again'], token: 0 },
      ],
    );
    expect(openSealedArgs(structuredClone(args), sealed)).toEqual({
      card: { number: CARD_NUMBER },
      list: [1, 'second'],
      deep: { again: { number: CARD_NUMBER } },
      kept: 'x',
    });
    expect(openSealedArgs('{{ a }}', sealedOf([42], [{ path: [], token: 0 }]))).toBe(42);
  });

  it('keeps a "__proto__" key an own property and leaves Object.prototype alone', () => {
    const args = JSON.parse('{"__proto__": "{{ a }}"}');
    const opened = openSealedArgs(args, sealedOf([{ polluted: true }], [{ path: ['__proto__'], token: 0 }])) as object;
    expect(Object.getOwnPropertyDescriptor(opened, '__proto__')?.value).toEqual({ polluted: true });
    expect(Object.getPrototypeOf(opened)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses data that was tampered with, sealed for another tenant, or opened with another key', () => {
    const sealed = sealedOf(['secret'], [{ path: ['v'], token: 0 }]);
    const bytes = Buffer.from(sealed.tokens[0]!.data, 'latin1');
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] ?? 0) ^ 1;
    const tampered = { ...sealed, tokens: [{ ...sealed.tokens[0]!, data: bytes.toString('latin1') }] };
    expect(() => openSealedArgs({ v: '' }, tampered)).toThrow(TokenDecryptionError);
    // Every byte value survives the latin1 round trip (the sealed data above is random-looking bytes).
    expect(openSealedArgs({ v: '' }, sealed)).toEqual({ v: 'secret' });
    expect(() => openSealedArgs({ v: '' }, { ...sealed, tenantId: randomUUID() })).toThrow(TokenDecryptionError);
    expect(() => openSealedArgs({ v: '' }, { ...sealed, key: randomBytes(32).toString('latin1') })).toThrow(
      TokenDecryptionError,
    );
  });
});

describe('prepareArgs', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway();
  });
  afterAll(() => gateway?.close());

  async function setup() {
    const tenant = await gateway.createTenant();
    const principal = await principalFor(gateway, tenant.privateKey);
    const token = await createToken(gateway, tenant.privateKey, { type: 'CARD', data: card() });
    const prepare = (args: unknown, who = principal) =>
      gateway.app.services.tokens.prepareArgs(who, args, { maxTokens: 100 });
    return { tenant, principal, token, prepare };
  }

  it('leaves plain {{ <id> }} sealed: the args as sent, ciphertext only, and the worker opens them to the data', async () => {
    const { token, prepare } = await setup();
    const args = { card: `{{ ${token.id} }}`, again: [`{{${token.id.toUpperCase()}}}`], customer: 'c-1' };
    const prepared = await prepare(args);
    expect(prepared.args).toBe(args);
    expect(prepared.sealed?.tokens.map((t) => t.id)).toEqual([token.id]);
    const sent = Buffer.from(prepared.sealed!.tokens[0]!.data, 'latin1');
    expect(sent.includes(CARD_NUMBER)).toBe(false);
    // Exactly the row's sealed bytes (pg's bytea Buffers are views into an 8 KB pool slab), and a 256-bit key.
    const stored = await gateway.app.database.db
      .selectFrom('tokens')
      .select('data')
      .where('id', '=', token.id)
      .executeTakeFirstOrThrow();
    expect(sent.equals(Buffer.from(stored.data))).toBe(true);
    expect(Buffer.from(prepared.sealed!.key, 'latin1').length).toBe(32);
    expect(openSealedArgs(structuredClone(args), structuredClone(prepared.sealed!))).toEqual({
      card: card(),
      again: [card()],
      customer: 'c-1',
    });
  });

  it('renders on the main thread when an expression needs Liquid or is inside a longer string', async () => {
    const { token, prepare } = await setup();
    const filtered = await prepare({
      number: `{{ token: ${token.id} | json: '$.data.number' }}`,
      card: `{{ ${token.id} }}`,
    });
    expect(filtered).toEqual({ args: { number: CARD_NUMBER, card: card() }, sealed: null });
    const text = await prepare({ note: `card {{ ${token.id} | json: '$.number' | last4 }}` });
    expect(text).toEqual({ args: { note: 'card 4242' }, sealed: null });
    expect(await prepare({ none: 'at all' })).toEqual({ args: { none: 'at all' }, sealed: null });
  });

  it('makes every check before anything runs: unknown ids, token:use, containers', async () => {
    const { tenant, token, prepare } = await setup();
    await expect(prepare({ card: `{{ ${randomUUID()} }}` })).rejects.toBeInstanceOf(BadRequestError);
    const invokeOnly = await principalFor(
      gateway,
      await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:invoke']),
    );
    await expect(prepare({ card: `{{ ${token.id} }}` }, invokeOnly)).rejects.toBeInstanceOf(ForbiddenError);
    const otherTenant = await setup();
    await expect(otherTenant.prepare({ card: `{{ ${token.id} }}` })).rejects.toBeInstanceOf(BadRequestError);
  });

  it('react: a token whose stored data was tampered with is a 500 that names no data', async () => {
    const { tenant, token } = await setup();
    const reactorId = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      "module.exports = async (req) => { console.log('ran'); return { raw: req.args }; };",
    );
    const ok = await gateway.gql<any>(REACT, { id: reactorId, args: { card: `{{ ${token.id} }}` } }, tenant.privateKey);
    expect(ok.data?.react.raw).toEqual({ card: card() });

    const row = await gateway.app.database.db
      .selectFrom('tokens')
      .select('data')
      .where('id', '=', token.id)
      .executeTakeFirstOrThrow();
    const data = Buffer.from(row.data);
    data[data.length - 1] = (data[data.length - 1] ?? 0) ^ 1;
    await gateway.app.database.db.updateTable('tokens').set({ data }).where('id', '=', token.id).execute();
    // The trigger of migration 0006 tells the token cache; wait until react sees the new row.
    let failed: any;
    for (let attempt = 0; attempt < 50 && !failed; attempt++) {
      const result = await gateway.gql<any>(
        REACT,
        { id: reactorId, args: { card: `{{ ${token.id} }}` } },
        tenant.privateKey,
      );
      if (result.data?.react.__typename !== 'ReactorResponse') failed = result.data?.react;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(failed).toMatchObject({ __typename: 'ReactorRuntimeError', code: 'REACTOR_RUNTIME_ERROR', status: 500 });
    expect(failed.message).toMatch(/failed authentication/);
    expect(JSON.stringify(failed)).not.toContain(CARD_NUMBER);
  });
});
