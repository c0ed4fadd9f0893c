import { describe, expect, it } from 'vitest';
import { BadRequestError, type FieldErrors } from '../../src/errors.ts';
import {
  castParameterValue,
  type FormulaInput,
  type RequestParameterInput,
  validateFormulaInput,
} from '../../src/formulas/rules.ts';

// The seeds' own icon: a 5x5 PNG, with the space after the comma the seeds write.
const SEED_PNG_ICON =
  'data:image/png;base64, iVBORw0KGgoAAAANSUhEUgAAAAUAAAAFCAYAAACNbyblAAAAHElEQVQI12P4//8/w38GIAXDIBKE0DHxgljNBAAO9TXL0Y4OHwAAAABJRU5ErkJggg==';
// SOI, a JFIF APP0 segment (version 1.1, 1x1 aspect), EOI: the header every baseline JPEG file starts with.
const JPEG_BYTES = Buffer.from([
  0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
  0x00, 0xff, 0xd9,
]);
const JPEG_BASE64 = JPEG_BYTES.toString('base64');
const PNG_BASE64 = SEED_PNG_ICON.split(',')[1]!.trim();

function formula(overrides: Partial<FormulaInput> = {}): FormulaInput {
  return {
    name: 'My Private Reactor',
    description: 'Securely exchange token for another token',
    type: 'PRIVATE',
    icon: SEED_PNG_ICON,
    code: 'module.exports = async function (req) { return { raw: { foo: "bar" } }; };',
    configuration: [{ name: 'SERVICE_API_KEY', description: 'Configuration description', type: 'STRING' }],
    requestParameters: [
      { name: 'request_parameter_1', description: 'Request parameter description', type: 'STRING' },
      { name: 'request_parameter_2', description: 'Request parameter description', type: 'BOOLEAN', optional: true },
    ],
    ...overrides,
  };
}

function errorsOf(run: () => unknown): FieldErrors {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    return (error as BadRequestError).errors ?? {};
  }
  throw new Error('expected a BadRequestError');
}

function parameters(...names: string[]): RequestParameterInput[] {
  return names.map((name) => ({ name, type: 'STRING' }));
}

describe('formula fields', () => {
  it('accepts the seeds example and fills in defaults', () => {
    const result = validateFormulaInput(
      formula({ configuration: [{ name: 'KEY', type: 'NUMBER' }], requestParameters: parameters('a') }),
    );
    expect(result).toMatchObject({ name: 'My Private Reactor', icon: SEED_PNG_ICON, type: 'PRIVATE' });
    expect(result.configuration).toEqual([{ name: 'KEY', description: null, type: 'NUMBER' }]);
    expect(result.requestParameters).toEqual([{ name: 'a', description: null, type: 'STRING', optional: false }]);
  });

  it('trims the formula name', () => {
    expect(validateFormulaInput(formula({ name: '  Stripe  ' })).name).toBe('Stripe');
  });

  it('rejects a blank formula name', () => {
    expect(errorsOf(() => validateFormulaInput(formula({ name: '   ' })))).toEqual({ name: ['is required'] });
  });

  it('accepts a formula name of 200 characters', () => {
    expect(validateFormulaInput(formula({ name: 'a'.repeat(200) })).name).toHaveLength(200);
  });

  it('rejects a formula name of 201 characters', () => {
    expect(errorsOf(() => validateFormulaInput(formula({ name: 'a'.repeat(201) })))).toEqual({
      name: ['must be at most 200 characters'],
    });
  });

  it('counts an emoji in a name as one character', () => {
    expect(() => validateFormulaInput(formula({ name: '😀'.repeat(200) }))).not.toThrow();
  });

  it('rejects blank code', () => {
    expect(errorsOf(() => validateFormulaInput(formula({ code: ' \n ' })))).toEqual({ code: ['is required'] });
  });

  it('accepts code of 50,000 characters and rejects 50,001', () => {
    expect(() => validateFormulaInput(formula({ code: 'x'.repeat(50_000) }))).not.toThrow();
    expect(errorsOf(() => validateFormulaInput(formula({ code: 'x'.repeat(50_001) })))).toEqual({
      code: ['must be at most 50000 characters'],
    });
  });

  it('takes the limits from its caller', () => {
    const limits = { maxNameLength: 5, maxCodeLength: 10 };
    expect(Object.keys(errorsOf(() => validateFormulaInput(formula({ name: 'sixsix' }), limits))).sort()).toEqual([
      'code',
      'name',
    ]);
  });

  it('rejects an unknown formula type', () => {
    const input = formula({ type: 'PUBLIC' as never });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({ type: ['must be one of OFFICIAL, PRIVATE'] });
  });

  it('reports every offending field at once', () => {
    const input = formula({
      name: '',
      code: '',
      icon: 'http://example.com/x.png',
      configuration: [{ name: 'a.b', type: 'STRING' }],
      requestParameters: parameters('', 'x'),
    });
    expect(Object.keys(errorsOf(() => validateFormulaInput(input)))).toEqual([
      'name',
      'icon',
      'code',
      'configuration[0].name',
      'requestParameters[0].name',
    ]);
  });
});

describe('formula icon', () => {
  it('accepts the seeds PNG icon, with its space after the comma', () => {
    expect(validateFormulaInput(formula({ icon: SEED_PNG_ICON })).icon).toBe(SEED_PNG_ICON);
  });

  it('accepts a PNG icon without the space', () => {
    expect(() => validateFormulaInput(formula({ icon: `data:image/png;base64,${PNG_BASE64}` }))).not.toThrow();
  });

  it('accepts a JPEG icon declared as image/jpeg or image/jpg', () => {
    for (const type of ['image/jpeg', 'image/jpg', 'IMAGE/JPEG']) {
      expect(() => validateFormulaInput(formula({ icon: `data:${type};base64,${JPEG_BASE64}` }))).not.toThrow();
    }
  });

  it('accepts no icon, or a null one', () => {
    expect(validateFormulaInput(formula({ icon: undefined })).icon).toBeNull();
    expect(validateFormulaInput(formula({ icon: null })).icon).toBeNull();
  });

  it('rejects an icon whose bytes are not a PNG although it says image/png', () => {
    expect(errorsOf(() => validateFormulaInput(formula({ icon: `data:image/png;base64,${JPEG_BASE64}` })))).toEqual({
      icon: ['must hold PNG data, as its declared type image/png says'],
    });
  });

  it('rejects an icon whose bytes are not a JPEG although it says image/jpeg', () => {
    const icon = `data:image/jpeg;base64,${PNG_BASE64}`;
    expect(errorsOf(() => validateFormulaInput(formula({ icon })))).toEqual({
      icon: ['must hold JPEG data, as its declared type image/jpeg says'],
    });
  });

  it('rejects an icon of another image type', () => {
    const icon = `data:image/gif;base64,${Buffer.from('GIF89a').toString('base64')}`;
    expect(errorsOf(() => validateFormulaInput(formula({ icon }))).icon).toHaveLength(1);
  });

  it('rejects an icon that is a URL rather than a data URL', () => {
    expect(errorsOf(() => validateFormulaInput(formula({ icon: 'https://example.com/icon.png' }))).icon).toEqual([
      'must be a base64 data URL of an image/png, image/jpg or image/jpeg image',
    ]);
  });

  it('rejects an icon whose payload is not valid base64', () => {
    for (const payload of ['', 'iVBORw0KGgo', 'iVBO*w0KGgo=', 'iVBORw0KGgo===']) {
      expect(errorsOf(() => validateFormulaInput(formula({ icon: `data:image/png;base64,${payload}` }))).icon).toEqual(
        expect.arrayContaining([expect.any(String)]),
      );
    }
  });

  it('rejects an empty icon string', () => {
    expect(errorsOf(() => validateFormulaInput(formula({ icon: '' }))).icon).toHaveLength(1);
  });
});

describe('configuration contract', () => {
  it('rejects a configuration option without a name', () => {
    const input = formula({ configuration: [{ name: ' ', type: 'STRING' }] });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({ 'configuration[0].name': ['is required'] });
  });

  it('rejects two configuration options of the same name', () => {
    const input = formula({
      configuration: [
        { name: 'KEY', type: 'STRING' },
        { name: 'OTHER', type: 'STRING' },
        { name: 'KEY', type: 'NUMBER' },
      ],
    });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({
      'configuration[2].name': ['duplicates configuration[0].name'],
    });
  });

  it('treats configuration names that differ in case as different', () => {
    const input = formula({
      configuration: [
        { name: 'key', type: 'STRING' },
        { name: 'KEY', type: 'STRING' },
      ],
    });
    expect(() => validateFormulaInput(input)).not.toThrow();
  });

  it('rejects a dotted configuration name', () => {
    const input = formula({ configuration: [{ name: 'SERVICE.KEY', type: 'STRING' }] });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({
      'configuration[0].name': ['must not contain a dot'],
    });
  });

  it('rejects an unknown configuration type', () => {
    const input = formula({ configuration: [{ name: 'KEY', type: 'DATE' as never }] });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({
      'configuration[0].type': ['must be one of STRING, BOOLEAN, NUMBER'],
    });
  });

  it('rejects a configuration name with surrounding spaces or named __proto__', () => {
    const input = formula({
      configuration: [
        { name: ' KEY', type: 'STRING' },
        { name: '__proto__', type: 'STRING' },
      ],
    });
    expect(Object.keys(errorsOf(() => validateFormulaInput(input)))).toEqual([
      'configuration[0].name',
      'configuration[1].name',
    ]);
  });
});

describe('request parameter contract', () => {
  it('accepts dotted request parameter names', () => {
    const input = formula({ requestParameters: parameters('request_id', 'user.first_name', 'user.address.city') });
    expect(validateFormulaInput(input).requestParameters.map((p) => p.name)).toEqual([
      'request_id',
      'user.first_name',
      'user.address.city',
    ]);
  });

  it('rejects a request parameter name with an empty segment', () => {
    const input = formula({ requestParameters: parameters('.user', 'user.', 'user..city') });
    expect(Object.keys(errorsOf(() => validateFormulaInput(input)))).toEqual([
      'requestParameters[0].name',
      'requestParameters[1].name',
      'requestParameters[2].name',
    ]);
  });

  it('rejects two request parameters of the same name', () => {
    const input = formula({ requestParameters: parameters('user.name', 'user.name') });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({
      'requestParameters[1].name': ['duplicates requestParameters[0].name'],
    });
  });

  it('rejects a request parameter that is both a value and a parent, on the parent', () => {
    const input = formula({ requestParameters: parameters('user.name', 'request_id', 'user', 'user.age') });
    expect(errorsOf(() => validateFormulaInput(input))).toEqual({
      'requestParameters[2].name': ['is both a value and the parent of "user.name"; declare only one of them'],
    });
  });

  it('rejects a value that is the grandparent of another parameter', () => {
    const input = formula({ requestParameters: parameters('user', 'user.address.city') });
    expect(Object.keys(errorsOf(() => validateFormulaInput(input)))).toEqual(['requestParameters[0].name']);
  });

  it('does not take a shared name prefix for a parent', () => {
    const input = formula({ requestParameters: parameters('user', 'username', 'user_id') });
    expect(() => validateFormulaInput(input)).not.toThrow();
  });

  it('rejects a __proto__ segment in a request parameter name', () => {
    const input = formula({ requestParameters: parameters('user.__proto__.polluted') });
    expect(Object.keys(errorsOf(() => validateFormulaInput(input)))).toEqual(['requestParameters[0].name']);
  });

  it('rejects a non-boolean optional flag and an unknown type', () => {
    const input = formula({
      requestParameters: [{ name: 'a', type: 'OBJECT' as never, optional: 'yes' as never }],
    });
    expect(Object.keys(errorsOf(() => validateFormulaInput(input))).sort()).toEqual([
      'requestParameters[0].optional',
      'requestParameters[0].type',
    ]);
  });

  it('defaults a null optional flag to required', () => {
    const input = formula({ requestParameters: [{ name: 'a', type: 'NUMBER', optional: null }] });
    expect(validateFormulaInput(input).requestParameters[0]?.optional).toBe(false);
  });
});

describe('casting to a parameter type', () => {
  it.each([
    ['NUMBER', '123', 123],
    ['NUMBER', ' -1.5e2 ', -150],
    ['NUMBER', 42, 42],
    ['BOOLEAN', 'true', true],
    ['BOOLEAN', 'FALSE', false],
    ['BOOLEAN', false, false],
    ['STRING', 'x', 'x'],
    ['STRING', 123, '123'],
    ['STRING', true, 'true'],
  ] as const)('casts %s from %j to %j', (type, input, output) => {
    expect(castParameterValue(type, input)).toEqual({ ok: true, value: output });
  });

  it.each([
    ['NUMBER', '12abc'],
    ['NUMBER', ''],
    ['NUMBER', 'NaN'],
    ['NUMBER', 'Infinity'],
    ['NUMBER', '0x10'],
    ['NUMBER', '1e400'],
    ['NUMBER', Number.NaN],
    ['NUMBER', Number.POSITIVE_INFINITY],
    ['NUMBER', true],
    ['BOOLEAN', 1],
    ['BOOLEAN', 'yes'],
    ['BOOLEAN', ''],
    ['STRING', null],
    ['STRING', {}],
    ['STRING', []],
    ['NUMBER', null],
  ] as const)('refuses to cast %s from %j', (type, input) => {
    expect(castParameterValue(type, input).ok).toBe(false);
  });

  it('does not echo the refused value in its message, as it may be detokenized card data', () => {
    const result = castParameterValue('NUMBER', '4242-4242-4242-4242');
    expect(result).toEqual({ ok: false, message: 'must be a number, not a string that cannot be cast' });
  });
});
