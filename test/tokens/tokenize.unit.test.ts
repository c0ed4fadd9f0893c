import { describe, expect, it } from 'vitest';
import { BadRequestError } from '../../src/errors.ts';
import { validateTokenRequest } from '../../src/tokens/token-input.ts';
import { isTokenRequest, planTokenization } from '../../src/tokens/tokenize.ts';

const now = new Date('2026-06-01T00:00:00Z');
const card = { number: '4242424242424242', expiration_month: 12, expiration_year: 2030 };

function plan(tokenize: unknown, maxTokens = 100) {
  let next = 0;
  return planTokenization(tokenize, { now, maxTokens, newId: () => `id-${next++}` });
}

function badRequest(run: () => unknown): BadRequestError {
  try {
    run();
  } catch (error) {
    if (error instanceof BadRequestError) return error;
    throw error;
  }
  throw new Error('expected a BadRequestError');
}

describe('planTokenization', () => {
  it('replaces each top-level value by the id of its token, keeping the keys', () => {
    const { result, tokens } = plan({ ssn: '123-45-6789', pin: 1234, ok: true, list: [1, 2] });
    expect(result).toEqual({ ssn: 'id-0', pin: 'id-1', ok: 'id-2', list: 'id-3' });
    expect(tokens.map((t) => [t.request.type, t.request.data])).toEqual([
      ['TOKEN', '123-45-6789'],
      ['TOKEN', 1234],
      ['TOKEN', true],
      ['TOKEN', [1, 2]],
    ]);
  });

  it('turns a token request into that token, whatever the case of its type', () => {
    const { result, tokens } = plan({ card: { type: 'card', data: card, containers: ['/pci/low/'] } });
    expect(result).toEqual({ card: 'id-0' });
    expect(tokens[0]?.request).toMatchObject({ type: 'CARD', containers: ['/pci/low/'] });
    expect(tokens[0]?.request.mask).toMatchObject({ last4: '4242' });
  });

  it('walks plain objects that are not token requests, at any depth', () => {
    const { result } = plan({ billing: { card: { type: 'CARD', data: card }, name: 'Ada' } });
    expect(result).toEqual({ billing: { card: 'id-0', name: 'id-1' } });
  });

  it('tokenizes a whole block that is itself a token request or a primitive', () => {
    expect(plan({ type: 'TOKEN', data: 'x' }).result).toBe('id-0');
    expect(plan('just a string').result).toBe('id-0');
  });

  it('keeps null as null and drops undefined members, creating nothing for them', () => {
    const { result, tokens } = plan({ a: null, b: undefined, c: {} });
    expect(result).toEqual({ a: null, c: {} });
    expect(tokens).toHaveLength(0);
    expect(plan(null).result).toBeNull();
  });

  it('reads an object with extra members as a plain object, not a request', () => {
    const { result } = plan({ x: { type: 'TOKEN', data: 'd', other: 1 } });
    expect(result).toEqual({ x: { type: 'id-0', data: 'id-1', other: 'id-2' } });
    expect(isTokenRequest({ type: 'TOKEN', data: 'd', other: 1 })).toBe(false);
  });

  it('refuses a request naming a Basis Theory field it has no counterpart for, rather than walking it', () => {
    const request = { type: 'card', data: card, deduplicate_token: true, search_indexes: ['{{ data.number }}'] };
    expect(isTokenRequest(request)).toBe(true);
    expect(badRequest(() => plan({ card: request, other: 'kept' })).toShape().errors).toEqual({
      'tokenize.card.deduplicate_token': [
        'is not supported: tokens are not deduplicated (find a card’s tokens by fingerprint)',
      ],
      'tokenize.card.search_indexes': [
        'is not supported: tokens have no search indexes here (filter `tokens` by metadata or fingerprint)',
      ],
    });
    for (const field of ['id', 'privacy', 'mask', 'fingerprint_expression', 'fingerprintExpression']) {
      expect(() => plan({ t: { type: 'TOKEN', data: 'x', [field]: 'y' } }), field).toThrow(BadRequestError);
    }
  });

  it('accepts BT-style expires_at in a request', () => {
    const { tokens } = plan({ t: { type: 'TOKEN', data: 'x', expires_at: '2026-07-01T00:00:00Z' } });
    expect(tokens[0]?.request.expiresAt?.toISOString()).toBe('2026-07-01T00:00:00.000Z');
  });

  it('names an invalid value by its path under tokenize', () => {
    const error = badRequest(() => plan({ nested: { card: { type: 'CARD', data: { ...card, number: '1' } } } }));
    expect(Object.keys(error.errors ?? {})).toEqual(['tokenize.nested.card.data.number']);
    expect(badRequest(() => plan({ empty: '' })).errors).toHaveProperty(['tokenize.empty.data']);
    expect(badRequest(() => plan({ t: { type: 'SECRET', data: 'x' } })).errors).toHaveProperty(['tokenize.t.type']);
  });

  it('refuses more tokens than allowed', () => {
    const error = badRequest(() => plan({ a: 1, b: 2, c: 3 }, 2));
    expect(error.message).toContain('at most 2 tokens');
  });

  it('refuses nesting deeper than 32 levels, naming the path, and takes 32', () => {
    const nested = (levels: number) => {
      let deep: unknown = 'x';
      for (let i = 0; i < levels; i++) deep = { d: deep };
      return deep;
    };
    expect(() => plan(nested(32))).not.toThrow();
    const path = `tokenize${'.d'.repeat(33)}`;
    expect(badRequest(() => plan(nested(33))).errors).toEqual({ [path]: ['is nested deeper than 32 levels'] });
  });
});

describe('validateTokenRequest', () => {
  it('defaults containers by type', () => {
    expect(validateTokenRequest({ type: 'TOKEN', data: 'x' }, now).containers).toEqual(['/general/high/']);
    expect(validateTokenRequest({ type: 'CARD', data: card }, now).containers).toEqual(['/pci/high/']);
  });

  it('deduplicates containers', () => {
    const request = validateTokenRequest({ type: 'TOKEN', data: 'x', containers: ['/a/', '/a/', '/b/c/'] }, now);
    expect(request.containers).toEqual(['/a/', '/b/c/']);
  });

  it('reports every offending field at once', () => {
    const error = badRequest(() =>
      validateTokenRequest(
        { type: 'CARD', data: { number: 'x' }, metadata: { a: [] }, containers: ['bad'], expiresAt: 'soon' },
        now,
      ),
    );
    expect(Object.keys(error.errors ?? {}).sort()).toEqual([
      'containers',
      'data.expiration_month',
      'data.expiration_year',
      'data.number',
      'expiresAt',
      'metadata.a',
    ]);
  });

  it('bounds metadata keys at 100 characters, without repeating a longer one', () => {
    const [fits, tooLong] = ['k'.repeat(100), 'k'.repeat(101)];
    expect(validateTokenRequest({ type: 'TOKEN', data: 'x', metadata: { [fits]: 'v' } }, now).metadata).toEqual({
      [fits]: 'v',
    });
    expect(
      badRequest(() => validateTokenRequest({ type: 'TOKEN', data: 'x', metadata: { [tooLong]: 'v' } }, now)).errors,
    ).toEqual({ metadata: ['keys must be at most 100 characters'] });
  });

  it('refuses a metadata integer past 2^53, which JSON has already rounded', () => {
    const metadata = { customer: JSON.parse('9007199254740993'), ok: 9007199254740991 };
    expect(badRequest(() => validateTokenRequest({ type: 'TOKEN', data: 'x', metadata }, now)).errors).toEqual({
      'metadata.customer': [
        'must be a number JSON carries exactly (integers up to 2^53 - 1; send a longer one as a string)',
      ],
    });
  });

  it('refuses an expiry at or before now', () => {
    expect(badRequest(() => validateTokenRequest({ type: 'TOKEN', data: 'x', expiresAt: now }, now)).errors).toEqual({
      expiresAt: ['must be in the future'],
    });
  });
});
