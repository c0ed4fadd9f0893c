import { describe, expect, it } from 'vitest';
import { BadRequestError, type FieldErrors } from '../../src/errors.ts';
import type { ParameterType, RequestParameter } from '../../src/formulas/rules.ts';
import { validateArgs } from '../../src/invocations/request-parameters.ts';

function errorsOf(run: () => unknown): FieldErrors {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    return (error as BadRequestError).errors ?? {};
  }
  throw new Error('expected a BadRequestError');
}

function parameter(name: string, type: ParameterType = 'STRING', optional = false): RequestParameter {
  return { name, description: null, type, optional };
}

// The seeds' nested example, parameters and args as the seeds write them.
const seedParameters = [
  parameter('request_id'),
  parameter('user.first_name'),
  parameter('user.last_name'),
  parameter('user.address.city', 'STRING', true),
  parameter('user.address.state', 'STRING', true),
];
const seedArgs = {
  request_id: 'd29e8a27-bfdb-4d26-9f13-29bdeafc9bfe',
  user: { first_name: 'John', last_name: 'Doe', address: { city: 'Seattle', state: 'WA' } },
};

describe('args against request parameters', () => {
  it('accepts the seeds nested example unchanged', () => {
    expect(validateArgs(seedParameters, seedArgs)).toEqual(seedArgs);
  });

  it('accepts the seeds example without its optional address', () => {
    const args = { request_id: 'r', user: { first_name: 'John', last_name: 'Doe' } };
    expect(validateArgs(seedParameters, args)).toEqual(args);
  });

  it('rejects missing required parameters, naming each path', () => {
    expect(errorsOf(() => validateArgs(seedParameters, { user: { last_name: 'Doe' } }))).toEqual({
      'args.request_id': ['is required'],
      'args.user.first_name': ['is required'],
    });
  });

  it('reports every required nested parameter when their parent object is missing', () => {
    expect(errorsOf(() => validateArgs(seedParameters, { request_id: 'r' }))).toEqual({
      'args.user.first_name': ['is required'],
      'args.user.last_name': ['is required'],
    });
  });

  it('counts a null value as missing', () => {
    expect(errorsOf(() => validateArgs([parameter('a')], { a: null }))).toEqual({ 'args.a': ['is required'] });
    expect(validateArgs([parameter('a', 'NUMBER', true)], { a: null })).toEqual({ a: null });
  });

  it('rejects an intermediate that is not an object, once, on its own path', () => {
    const args = { request_id: 'r', user: { first_name: 'J', last_name: 'D', address: 'Seattle, WA' } };
    expect(errorsOf(() => validateArgs(seedParameters, args))).toEqual({ 'args.user.address': ['must be an object'] });
  });

  it('rejects an array where a parameter path expects an object', () => {
    expect(errorsOf(() => validateArgs([parameter('user.name')], { user: [{ name: 'x' }] }))).toEqual({
      'args.user': ['must be an object'],
    });
  });

  it('casts a numeric string to a number and a boolean string to a boolean', () => {
    const parameters = [
      parameter('amount', 'NUMBER'),
      parameter('capture', 'BOOLEAN'),
      parameter('order.qty', 'NUMBER'),
    ];
    expect(validateArgs(parameters, { amount: '123', capture: 'True', order: { qty: '2.5' } })).toEqual({
      amount: 123,
      capture: true,
      order: { qty: 2.5 },
    });
  });

  it('casts a number or boolean given for a string parameter to its string form', () => {
    expect(validateArgs([parameter('zip'), parameter('flag')], { zip: 98101, flag: false })).toEqual({
      zip: '98101',
      flag: 'false',
    });
  });

  it('rejects a value that cannot be cast to the declared type', () => {
    const parameters = [parameter('amount', 'NUMBER'), parameter('capture', 'BOOLEAN'), parameter('card.number')];
    expect(
      errorsOf(() => validateArgs(parameters, { amount: 'non-numeric', capture: 1, card: { number: {} } })),
    ).toEqual({
      'args.amount': ['must be a number, not a string that cannot be cast'],
      'args.capture': ['must be a boolean, not a number'],
      'args.card.number': ['must be a string, not an object'],
    });
  });

  it('forwards undeclared args, arrays and objects included, unchanged', () => {
    const args = { amount: '5', extra: { items: [1, { a: 'b' }] }, note: null };
    const result = validateArgs([parameter('amount', 'NUMBER')], args);
    expect(result).toEqual({ amount: 5, extra: { items: [1, { a: 'b' }] }, note: null });
  });

  it('accepts any args when the formula declares no parameters', () => {
    const args = { anything: [1, 2, 3], nested: { deep: true } };
    expect(validateArgs([], args)).toEqual(args);
  });

  it('treats null or absent args as an empty object', () => {
    expect(validateArgs([parameter('a', 'STRING', true)], undefined)).toEqual({});
    expect(validateArgs([], null)).toEqual({});
    expect(errorsOf(() => validateArgs([parameter('a')], null))).toEqual({ 'args.a': ['is required'] });
  });

  it('rejects args that are not an object', () => {
    for (const args of ['text', 42, [1, 2]]) {
      expect(errorsOf(() => validateArgs([], args))).toEqual({ args: ['must be an object'] });
    }
  });

  it('matches parameter names case-sensitively', () => {
    expect(errorsOf(() => validateArgs([parameter('requestId')], { RequestId: 'r' }))).toEqual({
      'args.requestId': ['is required'],
    });
  });

  it('returns a new object and leaves the input as it was', () => {
    const args = { user: { age: '42', address: { zip: 98101 } }, other: { untouched: true } };
    const before = structuredClone(args);
    const result = validateArgs([parameter('user.age', 'NUMBER'), parameter('user.address.zip')], args) as typeof args;
    expect(args).toEqual(before);
    expect(result).not.toBe(args);
    expect(result).toEqual({ user: { age: 42, address: { zip: '98101' } }, other: { untouched: true } });
  });

  it('reads only own properties, so inherited names are missing', () => {
    expect(errorsOf(() => validateArgs([parameter('constructor.name')], {}))).toEqual({
      'args.constructor.name': ['is required'],
    });
  });

  it('never writes through a __proto__ key', () => {
    const args = JSON.parse('{"__proto__": {"n": "1"}}');
    const result = validateArgs([parameter('__proto__.n', 'NUMBER')], args) as Record<string, unknown>;
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(result, '__proto__')?.value).toEqual({ n: 1 });
    expect(({} as Record<string, unknown>).n).toBeUndefined();
  });

  it('leaves values that already have the declared type as they are', () => {
    const args = { a: 'x', b: 1, c: true };
    const result = validateArgs([parameter('a'), parameter('b', 'NUMBER'), parameter('c', 'BOOLEAN')], args);
    expect(result).toEqual(args);
  });
});
