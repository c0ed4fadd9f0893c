import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { compileString } from '../../src/tokens/expressions/compile.ts';
import { type DetokenizableToken, detokenize, findTokenIds } from '../../src/tokens/expressions/index.ts';

/** Where an expression goes in a generated document: which token, and whether alone or inside other text. */
class Slot {
  constructor(
    readonly tokenIndex: number,
    readonly around: [string, string] | null,
  ) {}
}

// Data that would look like expressions if it were ever scanned again.
const POOL: DetokenizableToken[] = [
  { number: '4242424242424242', note: '{{ 00000000-0000-4000-8000-000000000000 }}' },
  'plain {{ 11111111-1111-4111-8111-111111111111 | last4 }} text',
  42,
  [1, { '{{ key }}': true }],
].map((data, i) => ({
  id: `${i}0000000-aaaa-4bbb-8ccc-${String(i).padStart(12, '0')}`,
  type: 'TOKEN',
  data,
  metadata: null,
  containers: [],
  createdAt: '2025-01-01T00:00:00.000Z',
  expiresAt: null,
  fingerprint: null,
  mask: null,
}));

const loaderOfPool = () =>
  vi.fn(async (ids: string[]) => new Map(POOL.filter((t) => ids.includes(t.id)).map((t) => [t.id, t] as const)));

const withoutBraces = fc.string().filter((s) => !s.includes('{{') && !s.includes('{%'));
const jsonWithoutExpressions = fc.jsonValue().filter((value) => !JSON.stringify(value).includes('{{'));

const slot = fc
  // A prefix ending in "{" would make "{{{ id }}", which Liquid reads as an expression starting with "{".
  .tuple(
    fc.nat(POOL.length - 1),
    fc.option(
      fc.tuple(
        withoutBraces.filter((s) => !s.endsWith('{')),
        withoutBraces,
      ),
      { nil: null },
    ),
  )
  .map(([index, around]) => new Slot(index, around));
const leaf = fc.oneof(withoutBraces, fc.integer(), fc.boolean(), fc.constant(null), slot);
// Keys may contain braces: keys are never evaluated, so they must come back as they went in.
const key = fc.oneof(fc.string(), fc.constant('{{ key }}'), fc.constant('__proto__'));
const { document } = fc.letrec<{ document: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  document: fc.oneof({ depthSize: 'small', maxDepth: 8 }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('document'), { maxLength: 4 }),
  object: fc
    .uniqueArray(fc.tuple(key, tie('document')), { maxLength: 4, selector: ([k]) => k })
    .map((entries) => Object.fromEntries(entries)),
}));

/** The document with each slot turned into its expression (`render`) or its expected value (`expect`). */
function build(value: unknown, mode: 'render' | 'expect'): unknown {
  if (value instanceof Slot) {
    const token = POOL[value.tokenIndex] as DetokenizableToken;
    if (mode === 'render') {
      const expression = `{{ ${token.id} }}`;
      return value.around ? `${value.around[0]}${expression}${value.around[1]}` : expression;
    }
    // Surrounding text that is only whitespace still leaves a whole-string expression, which yields the value.
    if (!value.around || value.around.join('').trim() === '') return token.data;
    const text = typeof token.data === 'string' ? token.data : JSON.stringify(token.data);
    return `${value.around[0]}${text}${value.around[1]}`;
  }
  if (Array.isArray(value)) return value.map((item) => build(item, mode));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, build(v, mode)]));
  }
  return value;
}

function slotsIn(value: unknown): Slot[] {
  if (value instanceof Slot) return [value];
  if (Array.isArray(value)) return value.flatMap(slotsIn);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(slotsIn);
  return [];
}

describe('detokenization properties', () => {
  it('returns random JSON without {{ unchanged and never loads a token', async () => {
    await fc.assert(
      fc.asyncProperty(jsonWithoutExpressions, async (args) => {
        const load = loaderOfPool();
        expect(await detokenize(args, load)).toStrictEqual(args);
        expect(load).not.toHaveBeenCalled();
      }),
    );
  });

  it('replaces exactly the expressions placed at random paths, at any depth, in arrays and objects', async () => {
    await fc.assert(
      fc.asyncProperty(document, async (shape) => {
        const args = build(shape, 'render');
        const before = structuredClone(args);
        expect(await detokenize(args, loaderOfPool())).toStrictEqual(build(shape, 'expect'));
        expect(args).toStrictEqual(before);
      }),
    );
  });

  it('loads once with exactly the distinct ids used, and inserts data that looks like expressions verbatim', async () => {
    await fc.assert(
      fc.asyncProperty(document, async (shape) => {
        const load = loaderOfPool();
        const args = build(shape, 'render');
        const used = [...new Set(slotsIn(shape).map((s) => (POOL[s.tokenIndex] as DetokenizableToken).id))];
        const result = await detokenize(args, load);
        expect(new Set(findTokenIds(args))).toEqual(new Set(used));
        if (used.length === 0) {
          expect(load).not.toHaveBeenCalled();
        } else {
          expect(load).toHaveBeenCalledTimes(1);
          expect(new Set(load.mock.calls[0]?.[0])).toEqual(new Set(used));
        }
        // Running the result through again would load the ids hidden in token data; one pass never does.
        expect(result).toStrictEqual(build(shape, 'expect'));
      }),
    );
  });
});

describe('{{ <id> }} evaluated without Liquid', () => {
  it('gives what Liquid gives for any token data, alone and inside text', async () => {
    const id = '0a000000-aaaa-4bbb-8ccc-000000000000';
    const args = { alone: `{{ ${id} }}`, inside: `[{{ ${id} }}]` };
    const compiled = [compileString(args.alone), compileString(args.inside)];
    const expressions = compiled.flatMap((c) => c.parts.filter((part) => typeof part !== 'string'));
    expect(expressions.map((expression) => expression.dataOnly)).toEqual([true, true]);
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (data) => {
        const token: DetokenizableToken = { ...POOL[0]!, id, data };
        const load = async () => new Map([[id, token]]);
        const shortcut = await detokenize(args, load);
        // The same compiled expressions with the shortcut off go through Liquid.
        for (const expression of expressions) expression.dataOnly = false;
        try {
          expect(shortcut).toEqual(await detokenize(args, load));
        } finally {
          for (const expression of expressions) expression.dataOnly = true;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('is used only for a bare id: filters and token: references go through Liquid', () => {
    const id = '0a000000-aaaa-4bbb-8ccc-000000000000';
    const dataOnly = (source: string) => (compileString(source).whole as { dataOnly: boolean }).dataOnly;
    expect(dataOnly(`{{${id.toUpperCase()}}}`)).toBe(true);
    expect(dataOnly(`{{ ${id} | last4 }}`)).toBe(false);
    expect(dataOnly(`{{ token: ${id} }}`)).toBe(false);
    expect(dataOnly(`{{ token: ${id} | json: '$.data' }}`)).toBe(false);
  });
});
