import { readFileSync } from 'node:fs';
import {
  type GraphQLUnionType,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  printSchema,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/schema.ts';

describe('schema.graphql', () => {
  it('is what the Pothos schema prints (run `npm run schema` after changing the API)', () => {
    expect(readFileSync('schema.graphql', 'utf8')).toBe(`${printSchema(schema)}\n`);
  });

  it('describes every type, field, argument and enum value', () => {
    const missing: string[] = [];
    for (const type of Object.values(schema.getTypeMap())) {
      if (type.name.startsWith('__') || ['String', 'Int', 'Float', 'Boolean', 'ID'].includes(type.name)) continue;
      if (!type.description) missing.push(type.name);
      if (isObjectType(type) || isInterfaceType(type) || isInputObjectType(type)) {
        for (const field of Object.values(type.getFields())) {
          if (!field.description) missing.push(`${type.name}.${field.name}`);
          for (const arg of 'args' in field ? field.args : []) {
            if (!arg.description) missing.push(`${type.name}.${field.name}(${arg.name})`);
          }
        }
      }
      if (isEnumType(type)) {
        for (const value of type.getValues()) if (!value.description) missing.push(`${type.name}.${value.name}`);
      }
    }
    expect(missing).toEqual([]);
    expect(getNamedType(schema.getQueryType()!)).toBeTruthy();
  });

  it('lets react answer every way a run can end as a typed result, an interrupted run included', () => {
    const members = (schema.getType('MutationReactResult') as GraphQLUnionType).getTypes().map((type) => type.name);
    // The runtime's error codes (src/runtime/sandbox/outcome.ts, pool.ts) and the formula SDK's errors.
    expect(members).toEqual(
      expect.arrayContaining([
        'ReactorResponse',
        'BadRequestError',
        'UnauthenticatedError',
        'ForbiddenError',
        'InvalidPaymentMethodError',
        'InvalidReactorCodeError',
        'RateLimitedError',
        'ReactorRuntimeError',
        'ServiceUnavailableError',
        'ReactorTimeoutError',
        'ReactorInterruptedError',
      ]),
    );
  });
});
