import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BadRequestError, type FieldErrors } from '../../src/errors.ts';
import type { ConfigurationOption } from '../../src/formulas/rules.ts';
import { mergePatch } from '../../src/merge-patch.ts';
import { applyReactorPatch, validateConfiguration, validateReactorName } from '../../src/reactors/configuration.ts';

function errorsOf(run: () => unknown): FieldErrors {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    return (error as BadRequestError).errors ?? {};
  }
  throw new Error('expected a BadRequestError');
}

const contract: ConfigurationOption[] = [
  { name: 'SERVICE_API_KEY', description: null, type: 'STRING' },
  { name: 'RETRIES', description: null, type: 'NUMBER' },
  { name: 'SANDBOX', description: null, type: 'BOOLEAN' },
];

describe('reactor configuration', () => {
  it('accepts values of the declared types', () => {
    const configuration = { SERVICE_API_KEY: 'key_abcd1234', RETRIES: 3, SANDBOX: false };
    expect(validateConfiguration(contract, configuration)).toEqual(configuration);
  });

  it('casts numbers and booleans given as strings', () => {
    expect(validateConfiguration(contract, { SERVICE_API_KEY: 'k', RETRIES: '123', SANDBOX: 'TRUE' })).toEqual({
      SERVICE_API_KEY: 'k',
      RETRIES: 123,
      SANDBOX: true,
    });
  });

  it('casts a number or boolean given to a string option to its string form', () => {
    const result = validateConfiguration(contract, { SERVICE_API_KEY: 1234, RETRIES: 1, SANDBOX: true });
    expect(result.SERVICE_API_KEY).toBe('1234');
    expect(validateConfiguration(contract, { SERVICE_API_KEY: false, RETRIES: 1, SANDBOX: true }).SERVICE_API_KEY).toBe(
      'false',
    );
  });

  it('rejects a missing option', () => {
    expect(errorsOf(() => validateConfiguration(contract, { SERVICE_API_KEY: 'k', SANDBOX: true }))).toEqual({
      'configuration.RETRIES': ['is required'],
    });
  });

  it('rejects values that cannot be cast, naming each bad key', () => {
    const errors = errorsOf(() =>
      validateConfiguration(contract, { SERVICE_API_KEY: null, RETRIES: '12abc', SANDBOX: 1 }),
    );
    expect(Object.keys(errors)).toEqual([
      'configuration.SERVICE_API_KEY',
      'configuration.RETRIES',
      'configuration.SANDBOX',
    ]);
  });

  it.each(['', 'NaN', 'Infinity', '12abc'])('rejects %j as a number', (value) => {
    expect(
      errorsOf(() => validateConfiguration(contract, { SERVICE_API_KEY: 'k', RETRIES: value, SANDBOX: true })),
    ).toEqual({ 'configuration.RETRIES': ['must be a number, not a string that cannot be cast'] });
  });

  it('rejects objects and arrays as option values', () => {
    const errors = errorsOf(() =>
      validateConfiguration(contract, { SERVICE_API_KEY: { a: 1 }, RETRIES: [1], SANDBOX: true }),
    );
    expect(errors).toEqual({
      'configuration.SERVICE_API_KEY': ['must be a string, not an object'],
      'configuration.RETRIES': ['must be a number, not an array'],
    });
  });

  it('rejects an option the formula does not declare', () => {
    const configuration = { SERVICE_API_KEY: 'k', RETRIES: 1, SANDBOX: true, SERVICE_API_KEYS: 'typo' };
    expect(errorsOf(() => validateConfiguration(contract, configuration))).toEqual({
      'configuration.SERVICE_API_KEYS': ['is not a configuration option of the formula'],
    });
  });

  it('rejects a configuration that is not an object', () => {
    expect(errorsOf(() => validateConfiguration(contract, [] as never))).toEqual({
      configuration: ['must be an object'],
    });
  });

  it('accepts an empty configuration for a formula that declares none', () => {
    expect(validateConfiguration([], {})).toEqual({});
  });

  it('never sets a prototype from a __proto__ key', () => {
    const configuration = JSON.parse('{"__proto__": {"polluted": true}}');
    expect(errorsOf(() => validateConfiguration([], configuration))).toEqual({
      'configuration.__proto__': ['is not a configuration option of the formula'],
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('reactor name', () => {
  it('trims the name', () => {
    expect(validateReactorName('  My Reactor ')).toBe('My Reactor');
  });

  it('rejects a missing or blank reactor name', () => {
    for (const name of [undefined, null, '', '  ']) {
      expect(errorsOf(() => validateReactorName(name))).toEqual({ name: ['is required'] });
    }
  });

  it('accepts a reactor name of 200 characters', () => {
    expect(validateReactorName('r'.repeat(200))).toHaveLength(200);
  });

  it('rejects a reactor name of 201 characters', () => {
    expect(errorsOf(() => validateReactorName('r'.repeat(201)))).toEqual({ name: ['must be at most 200 characters'] });
  });
});

describe('RFC 7386 merge patch', () => {
  // The RFC's Appendix A, every example.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('patches %j with %j into %j', (target, patch, expected) => {
    expect(mergePatch(target, patch)).toEqual(expected);
  });

  it('does not mutate the target or the patch', () => {
    const target = { a: { b: 1, c: 2 }, d: 3 };
    const patch = { a: { b: null, e: { f: 1 } }, d: null };
    const targetCopy = structuredClone(target);
    const patchCopy = structuredClone(patch);
    mergePatch(target, patch);
    expect(target).toEqual(targetCopy);
    expect(patch).toEqual(patchCopy);
  });

  it('keeps a __proto__ key as data and never as a prototype', () => {
    const result = mergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.hasOwn(result, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  const json = fc.jsonValue({ maxDepth: 3 });
  const jsonObject = fc.dictionary(fc.string({ maxLength: 3 }), json, { maxKeys: 5 });

  it('leaves an object unchanged under an empty patch', () => {
    fc.assert(
      fc.property(jsonObject, (target) => {
        expect(mergePatch(target, {})).toEqual(target);
      }),
    );
  });

  it('gives the same result when the same patch is applied twice', () => {
    fc.assert(
      fc.property(json, json, (target, patch) => {
        const once = mergePatch(target, patch);
        expect(mergePatch(once, patch)).toEqual(once);
      }),
    );
  });

  it('makes every key the patch names equal to the patch value, drops nulled keys and keeps the others', () => {
    // The RFC's rules checked key by key: an oracle that does not share the implementation's recursion.
    const check = (target: unknown, patch: unknown, result: unknown): void => {
      const isObject = (v: unknown): v is Record<string, unknown> =>
        typeof v === 'object' && v !== null && !Array.isArray(v);
      if (!isObject(patch)) {
        expect(result).toEqual(patch);
        return;
      }
      expect(isObject(result)).toBe(true);
      const out = result as Record<string, unknown>;
      const base = isObject(target) ? target : {};
      for (const key of Object.keys(base)) {
        if (!Object.hasOwn(patch, key)) expect(out[key]).toEqual(base[key]);
      }
      for (const [key, value] of Object.entries(patch)) {
        if (value === null) expect(Object.hasOwn(out, key)).toBe(false);
        else check(Object.hasOwn(base, key) ? base[key] : undefined, value, out[key]);
      }
      for (const key of Object.keys(out)) {
        expect(Object.hasOwn(base, key) || Object.hasOwn(patch, key)).toBe(true);
      }
    };
    fc.assert(fc.property(json, json, (target, patch) => check(target, patch, mergePatch(target, patch))));
    fc.assert(fc.property(jsonObject, jsonObject, (target, patch) => check(target, patch, mergePatch(target, patch))));
  });
});

describe('patching a reactor', () => {
  const current = {
    name: 'My Reactor',
    configuration: { SERVICE_API_KEY: 'key_abcd1234', RETRIES: 3, SANDBOX: true },
    applicationId: '45c124e7-6ab2-4899-8c89-9b1e4b1b7b6f',
  };

  it('keeps every field an empty patch leaves out', () => {
    expect(applyReactorPatch(current, {})).toEqual(current);
  });

  it('replaces the name and trims it', () => {
    expect(applyReactorPatch(current, { name: ' Renamed ' }).name).toBe('Renamed');
  });

  it('rejects a null name, as a reactor always has one', () => {
    expect(errorsOf(() => applyReactorPatch(current, { name: null }))).toEqual({ name: ['is required'] });
  });

  it('rejects a patched name of 201 characters', () => {
    expect(errorsOf(() => applyReactorPatch(current, { name: 'n'.repeat(201) }))).toEqual({
      name: ['must be at most 200 characters'],
    });
  });

  it('detaches the application on a null applicationId', () => {
    expect(applyReactorPatch(current, { applicationId: null }).applicationId).toBeNull();
  });

  it('merges configuration key by key, a null value deleting its key', () => {
    expect(applyReactorPatch(current, { configuration: { RETRIES: 5, SANDBOX: null } }).configuration).toEqual({
      SERVICE_API_KEY: 'key_abcd1234',
      RETRIES: 5,
    });
  });

  it('empties the configuration on a null configuration', () => {
    expect(applyReactorPatch(current, { configuration: null }).configuration).toEqual({});
  });

  it('rejects a configuration patch that is not an object', () => {
    expect(errorsOf(() => applyReactorPatch(current, { configuration: ['x'] as never }))).toEqual({
      configuration: ['must be an object'],
    });
  });

  it('does not mutate the current reactor', () => {
    const before = structuredClone(current);
    applyReactorPatch(current, { name: 'x', configuration: { RETRIES: null }, applicationId: null });
    expect(current).toEqual(before);
  });

  it('validates and casts the merged configuration when given the contract', () => {
    expect(applyReactorPatch(current, { configuration: { RETRIES: '7' } }, contract).configuration).toEqual({
      SERVICE_API_KEY: 'key_abcd1234',
      RETRIES: 7,
      SANDBOX: true,
    });
  });

  it('reports name and configuration errors together when given the contract', () => {
    const patch = { name: null, configuration: { SANDBOX: null, RETRIES: 'many' } };
    expect(errorsOf(() => applyReactorPatch(current, patch, contract))).toEqual({
      name: ['is required'],
      'configuration.RETRIES': ['must be a number, not a string that cannot be cast'],
      'configuration.SANDBOX': ['is required'],
    });
  });
});
