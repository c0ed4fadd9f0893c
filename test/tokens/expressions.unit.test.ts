import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { BadRequestError, ForbiddenError } from '../../src/errors.ts';
import { compileString } from '../../src/tokens/expressions/compile.ts';
import { type DetokenizableToken, detokenize, findTokenIds } from '../../src/tokens/expressions/index.ts';

function token(data: unknown, overrides: Partial<DetokenizableToken> = {}): DetokenizableToken {
  return {
    id: randomUUID(),
    type: 'CARD',
    data,
    metadata: { customer: 'c-1' },
    containers: ['/pci/high/'],
    createdAt: '2025-01-01T00:00:00.000Z',
    expiresAt: null,
    fingerprint: 'fp',
    mask: null,
    ...overrides,
  };
}

function loaderOf(...tokens: DetokenizableToken[]) {
  return vi.fn(async (ids: string[]) => {
    const found = new Map<string, DetokenizableToken>();
    for (const t of tokens) if (ids.includes(t.id)) found.set(t.id, t);
    return found;
  });
}

async function rejection(promise: Promise<unknown>): Promise<BadRequestError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(BadRequestError);
  return error as BadRequestError;
}

const cardData = { number: '4242424242424242', expiration_month: 12, expiration_year: 2030, cvc: '123' };

describe('whole-string expressions', () => {
  it('replace a string that is exactly {{ <id> }} with the token data itself (a card becomes the object)', async () => {
    const card = token(cardData);
    expect(await detokenize({ card: `{{ ${card.id} }}` }, loaderOf(card))).toEqual({ card: cardData });
  });

  it('ignore whitespace around the expression and inside the braces', async () => {
    const card = token(cardData);
    const load = loaderOf(card);
    expect(await detokenize({ a: `  {{${card.id}}}\n`, b: `{{   ${card.id}   }}` }, load)).toEqual({
      a: cardData,
      b: cardData,
    });
  });

  it('accept an upper-case id and hand the loader the lower-case one', async () => {
    const card = token(cardData);
    const load = loaderOf(card);
    expect(await detokenize(`{{ ${card.id.toUpperCase()} }}`, load)).toEqual(cardData);
    expect(load).toHaveBeenCalledWith([card.id]);
  });

  it('keep the type a filter produces: to_number gives a number, to_boolean a boolean', async () => {
    const t = token({ month: '07', flag: 'TRUE' });
    const args = {
      month: `{{ ${t.id} | json: '$.month' | to_number }}`,
      flag: `{{ ${t.id} | json: '$.flag' | to_boolean }}`,
    };
    expect(await detokenize(args, loaderOf(t))).toEqual({ month: 7, flag: true });
  });
});

describe('the json filter', () => {
  it('selects one property of the data with {{ <id> | json: $.path }}', async () => {
    const card = token(cardData);
    expect(await detokenize(`{{ ${card.id} | json: '$.number' }}`, loaderOf(card))).toBe('4242424242424242');
  });

  it('selects from the whole token with {{ token: <id> | json: $.data.path }}', async () => {
    const card = token(cardData);
    const args = {
      number: `{{ token: ${card.id} | json: '$.data.number' }}`,
      id: `{{ token: ${card.id} | json: '$.id' }}`,
      customer: `{{ token: ${card.id} | json: '$.metadata.customer' }}`,
      created: `{{ token: ${card.id} | json: '$.createdAt' }}`,
    };
    expect(await detokenize(args, loaderOf(card))).toEqual({
      number: '4242424242424242',
      id: card.id,
      customer: 'c-1',
      created: '2025-01-01T00:00:00.000Z',
    });
  });

  it('exposes exactly the documented token fields to {{ token: <id> }}, whatever else the loader returns', async () => {
    const card = { ...token(cardData), tenantId: 'other', sealed: 'bytes' } as DetokenizableToken;
    const whole = (await detokenize(`{{ token: ${card.id} }}`, loaderOf(card))) as Record<string, unknown>;
    expect(Object.keys(whole).sort()).toEqual(
      ['containers', 'createdAt', 'data', 'expiresAt', 'fingerprint', 'id', 'mask', 'metadata', 'type'].sort(),
    );
  });

  it('rejects a path matching no value, naming the expression and the args field', async () => {
    const card = token(cardData);
    const expression = `{{ ${card.id} | json: '$.missing' }}`;
    const error = await rejection(detokenize({ payment: { card: [expression] } }, loaderOf(card)));
    expect(error.message).toContain(expression);
    expect(error.message).toMatch(/matched 0 values/);
    expect(Object.keys(error.errors ?? {})).toEqual(['args.payment.card[0]']);
  });

  it('rejects a path matching several values', async () => {
    const card = token(cardData);
    const error = await rejection(detokenize(`{{ ${card.id} | json: '$.*' }}`, loaderOf(card)));
    expect(error.message).toMatch(/matched 4 values; it must match exactly one/);
  });

  it('refuses JSONPath filter and script expressions', async () => {
    const card = token(cardData);
    for (const path of ['$[?(@.number)]', '$[(@.length-1)]', "$[?(this.constructor.constructor('return 1')())]"]) {
      // Refused as a path, not merely "matched 0 values" (which an evaluated filter on this data would also give).
      const error = await rejection(detokenize(`{{ ${card.id} | json: "${path}" }}`, loaderOf(card)));
      expect(error.message).toMatch(/is not a supported JSONPath \(filter and script expressions are not allowed\)/);
    }
  });

  it('does not reach inherited properties', async () => {
    const card = token(cardData);
    const error = await rejection(detokenize(`{{ ${card.id} | json: '$.constructor' }}`, loaderOf(card)));
    expect(error.message).toMatch(/matched 0 values/);
  });

  it('reads into a generic token whose string data is a JSON document', async () => {
    const t = token('{"user":{"ssn":"123-45-6789"}}', { type: 'TOKEN' });
    expect(await detokenize(`{{ ${t.id} | json: '$.user.ssn' }}`, loaderOf(t))).toBe('123-45-6789');
  });

  it('rejects a path without a leading $', async () => {
    const card = token(cardData);
    await rejection(detokenize(`{{ ${card.id} | json: 'number' }}`, loaderOf(card)));
  });
});

describe('the other filters', () => {
  const card = token(cardData);
  const amex = token({ ...cardData, number: '378282246310005' });
  const run = (expression: string) => detokenize(expression, loaderOf(card, amex));
  const number = `${card.id} | json: '$.number'`;

  it('last4 keeps the last four characters', async () => {
    expect(await run(`{{ ${number} | last4 }}`)).toBe('4242');
  });

  it('card_bin keeps 8 digits of a 16-digit number and 6 of a shorter one', async () => {
    expect(await run(`{{ ${number} | card_bin }}`)).toBe('42424242');
    expect(await run(`{{ ${amex.id} | json: '$.number' | card_bin }}`)).toBe('378282');
  });

  it('to_number rejects a non-numeric value without echoing it', async () => {
    const error = await rejection(run(`{{ ${card.id} | json: '$.cvc' | append: 'x' | to_number }}`));
    expect(error.message).toMatch(/to_number could not convert this string to a number/);
    expect(error.message).not.toContain('123x');
  });

  it('to_string turns an object into its JSON text and a number into digits', async () => {
    expect(await run(`{{ ${card.id} | to_string }}`)).toBe(JSON.stringify(cardData));
    expect(await run(`{{ ${card.id} | json: '$.expiration_month' | to_string }}`)).toBe('12');
  });

  it('to_boolean accepts true/false in any case and 1/0, and rejects anything else', async () => {
    const flags = token({ yes: 'True', no: '0', one: 1, bad: 'maybe' });
    const load = loaderOf(flags);
    const of = (path: string) => `{{ ${flags.id} | json: '${path}' | to_boolean }}`;
    expect(await detokenize([of('$.yes'), of('$.no'), of('$.one')], load)).toEqual([true, false, true]);
    await rejection(detokenize(of('$.bad'), load));
  });

  it('pad_left pads with the given character, or a space by default', async () => {
    expect(await run(`{{ ${card.id} | json: '$.expiration_month' | pad_left: 4, '0' }}`)).toBe('0012');
    expect(await run(`{{ ${card.id} | json: '$.cvc' | pad_left: 5 }}`)).toBe('  123');
  });

  it('pad_left refuses a length over 1024 and a padding of several characters', async () => {
    await rejection(run(`{{ ${number} | pad_left: 1025, '0' }}`));
    await rejection(run(`{{ ${number} | pad_left: 20, '00' }}`));
  });

  it('chains filters left to right and allows standard string filters', async () => {
    expect(await run(`{{ ${number} | last4 | prepend: '****' | pad_left: 10, '*' }}`)).toBe('******4242');
  });
});

describe('interpolation', () => {
  it('inserts an expression inside a longer string as text', async () => {
    const card = token(cardData);
    expect(await detokenize(`Card ending {{ ${card.id} | json: '$.number' | last4 }}.`, loaderOf(card))).toBe(
      'Card ending 4242.',
    );
  });

  it('inserts objects as JSON and numbers as digits, several expressions per string', async () => {
    const card = token(cardData);
    const text = `card=${'{{'} ${card.id} }} month={{ ${card.id} | json: '$.expiration_month' }}`;
    expect(await detokenize(text, loaderOf(card))).toBe(`card=${JSON.stringify(cardData)} month=12`);
  });

  it('honours Liquid whitespace control', async () => {
    const card = token(cardData);
    expect(await detokenize(`a   {{- ${card.id} | json: '$.cvc' -}}   b`, loaderOf(card))).toBe('a123b');
  });
});

describe('walking the args', () => {
  it('leaves strings without {{ alone and never calls the loader for them', async () => {
    const load = loaderOf();
    const args = { a: 'plain }} text {% if %}', b: [1, true, null, { c: '{ {' }] };
    expect(await detokenize(args, load)).toBe(args);
    expect(load).not.toHaveBeenCalled();
  });

  it('never evaluates object keys', async () => {
    const card = token(cardData);
    const key = `{{ ${card.id} }}`;
    expect(await detokenize({ [key]: key }, loaderOf(card))).toEqual({ [key]: cardData });
  });

  it('walks arrays and nested objects, and does not mutate the input', async () => {
    const card = token(cardData);
    const args = { list: [{ deep: [`{{ ${card.id} | json: '$.cvc' }}`, 'x'] }], other: { untouched: true } };
    const before = structuredClone(args);
    const result = (await detokenize(args, loaderOf(card))) as typeof args;
    expect(result).toEqual({ list: [{ deep: ['123', 'x'] }], other: { untouched: true } });
    expect(args).toEqual(before);
    expect(result.other).toBe(args.other);
  });

  it('walks args nested 100,000 levels deep without overflowing the stack', async () => {
    const card = token(cardData);
    let args: unknown = `{{ ${card.id} | json: '$.cvc' }}`;
    for (let i = 0; i < 100_000; i++) args = i % 2 ? { d: args } : [args];
    let result = await detokenize(args, loaderOf(card));
    for (let i = 100_000 - 1; i >= 0; i--) result = i % 2 ? (result as { d: unknown }).d : (result as unknown[])[0];
    expect(result).toBe('123');
  });

  it('keeps a "__proto__" key an ordinary property', async () => {
    const card = token(cardData);
    const args = JSON.parse(`{"__proto__": {"x": "{{ ${card.id} | json: '$.cvc' }}"}}`);
    const result = (await detokenize(args, loaderOf(card))) as Record<string, unknown>;
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(result, '__proto__')?.value).toEqual({ x: '123' });
  });
});

describe('loading tokens', () => {
  it('calls the loader once with every distinct id', async () => {
    const [a, b] = [token('a', { type: 'TOKEN' }), token('b', { type: 'TOKEN' })];
    const load = loaderOf(a, b);
    const args = { x: `{{ ${a.id} }}`, y: [`{{ ${b.id} }}-{{ ${a.id} }}`], z: `{{ ${a.id.toUpperCase()} }}` };
    expect(await detokenize(args, load)).toEqual({ x: 'a', y: ['b-a'], z: 'a' });
    expect(load).toHaveBeenCalledTimes(1);
    expect(load).toHaveBeenCalledWith([a.id, b.id]);
  });

  it('allows 100 distinct tokens and rejects 101 before loading any', async () => {
    const tokens = Array.from({ length: 101 }, (_, i) => token(`v${i}`, { type: 'TOKEN' }));
    const load = loaderOf(...tokens);
    const args = tokens.map((t) => `{{ ${t.id} }}`);
    expect(await detokenize(args.slice(0, 100), load)).toEqual(tokens.slice(0, 100).map((t) => t.data));
    load.mockClear();
    const error = await rejection(detokenize(args, load));
    expect(error.message).toMatch(/At most 100 tokens.*101/);
    expect(load).not.toHaveBeenCalled();
  });

  it('counts a token used many times once, and honours a lower maxTokens', async () => {
    const [a, b] = [token('a', { type: 'TOKEN' }), token('b', { type: 'TOKEN' })];
    const many = Array.from({ length: 150 }, () => `{{ ${a.id} }}`);
    expect(await detokenize(many, loaderOf(a))).toHaveLength(150);
    await rejection(detokenize([`{{ ${a.id} }}`, `{{ ${b.id} }}`], loaderOf(a, b), { maxTokens: 1 }));
  });

  it('allows 1,000 expressions in one request and refuses 1,001 before parsing any, in one string or many', async () => {
    const a = token('a', { type: 'TOKEN' });
    const one = `{{ ${a.id} }} `;
    expect(await detokenize({ text: one.repeat(1_000) }, loaderOf(a))).toEqual({ text: 'a '.repeat(1_000) });
    for (const args of [{ text: one.repeat(1_001) }, [one.repeat(500), one.repeat(501)]]) {
      const load = loaderOf(a);
      const error = await rejection(detokenize(args, load));
      expect(error.message).toBe("At most 1000 {{ }} expressions can be in one request's args; these hold 1001.");
      expect(error.errors).toEqual({ args: [error.message] });
      expect(load).not.toHaveBeenCalled();
    }
    // Counted before anything is parsed (60,000 in one string took Liquid 18 s): a malformed one is not reached.
    const error = await rejection(detokenize({ text: `${one.repeat(1_000)}{{ not-a-token }}` }, loaderOf(a)));
    expect(error.message).toMatch(/At most 1000 \{\{ \}\} expressions/);
  });

  it('reports a token the loader did not return as not found, naming the expression and nothing more', async () => {
    const id = randomUUID();
    const expression = `{{ ${id} | json: '$.number' }}`;
    const error = await rejection(detokenize({ card: { number: expression } }, loaderOf()));
    expect(error.message).toBe(`Token "${id}" in expression "${expression}" was not found.`);
    expect(error.errors).toEqual({ 'args.card.number': [error.message] });
  });

  it('lets a ForbiddenError from the loader through', async () => {
    const load = vi.fn(async () => {
      throw new ForbiddenError();
    });
    await expect(detokenize(`{{ ${randomUUID()} }}`, load)).rejects.toBeInstanceOf(ForbiddenError);
  });

  it('inserts token data containing {{ }} verbatim, without evaluating it again', async () => {
    const other = token('second', { type: 'TOKEN' });
    const sneaky = token({ note: `{{ ${other.id} }}` }, { type: 'TOKEN' });
    const load = loaderOf(sneaky, other);
    expect(await detokenize({ a: `{{ ${sneaky.id} }}`, b: `x {{ ${sneaky.id} | json: '$.note' }}` }, load)).toEqual({
      a: { note: `{{ ${other.id} }}` },
      b: `x {{ ${other.id} }}`,
    });
    expect(load).toHaveBeenCalledTimes(1);
    expect(load).toHaveBeenCalledWith([sneaky.id]);
  });
});

describe('malformed expressions', () => {
  const id = randomUUID();
  const malformed: Array<[string, string, RegExp]> = [
    ['an empty expression', '{{ }}', /Invalid expression "\{\{ \}\}"/],
    ['an id that is not a UUID', '{{ not-a-uuid }}', /must start with a token id/],
    ['a quoted literal instead of an id', '{{ "text" }}', /must start with a token id/],
    ['property access after the id', `{{ ${id}.number }}`, /must start with a token id/],
    ['an unknown filter', `{{ ${id} | shout }}`, /Unknown filter "shout"/],
    ['a removed standard filter', `{{ ${id} | where_exp: 'x', 'true' }}`, /Unknown filter "where_exp"/],
    ['an unclosed expression', `{{ ${id}`, /not closed/],
    ['an if tag', `{% if true %}{{ ${id} }}{% endif %}`, /Liquid tags are not allowed/],
    ['an include tag', `{{ ${id} }}{% include 'secrets' %}`, /Liquid tags are not allowed/],
    ['a variable as filter argument', `{{ ${id} | pad_left: width, '0' }}`, /non-literal argument/],
  ];

  for (const [name, expression, message] of malformed) {
    it(`rejects ${name} as BAD_REQUEST before loading any token`, async () => {
      const load = loaderOf();
      const error = await rejection(detokenize({ field: expression }, load));
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(message);
      expect(Object.keys(error.errors ?? {})).toEqual(['args.field']);
      expect(load).not.toHaveBeenCalled();
      expect(() => findTokenIds({ field: expression })).toThrow(BadRequestError);
    });
  }
});

describe('findTokenIds', () => {
  it('returns the distinct ids in order of first use, lower-cased', () => {
    const [a, b] = [randomUUID(), randomUUID()];
    expect(findTokenIds({ x: [`{{ ${b} }}`, `{{ token: ${a.toUpperCase()} | json: '$.id' }} {{ ${b} }}`] })).toEqual([
      b,
      a,
    ]);
  });

  it('returns nothing for args without expressions', () => {
    expect(findTokenIds({ a: 'b', c: [1, 2], d: null })).toEqual([]);
  });

  it('parses each distinct string once (the compiled form is cached)', () => {
    const text = `{{ ${randomUUID()} | last4 }}`;
    expect(compileString(text)).toBe(compileString(text));
  });
});
