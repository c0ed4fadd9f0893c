import { envelop, type Plugin, useEngine, useSchema } from '@envelop/core';
import {
  buildSchema,
  type DocumentNode,
  execute,
  GraphQLError,
  parse,
  subscribe,
  type ValidationRule,
  validate,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { useOperationCache } from '../../src/graphql/operation-cache.ts';
import { useQueryLimits } from '../../src/graphql/query-limits.ts';

const schema = buildSchema('type Query { hello: String, nested: Query }');

/** An envelop with graphql-js parse and validate counted, the given plugins, and the cache last (as in yoga.ts). */
function countingEnvelop(plugins: Plugin[] = []) {
  const calls = { parse: 0, validate: 0 };
  const getEnveloped = envelop({
    plugins: [
      useEngine({
        parse: (...args: Parameters<typeof parse>) => {
          calls.parse++;
          return parse(...args);
        },
        validate: (...args: Parameters<typeof validate>) => {
          calls.validate++;
          return validate(...args);
        },
        execute,
        subscribe,
      }),
      useSchema(schema),
      ...plugins,
      useOperationCache(),
    ],
  });
  return { calls, getEnveloped };
}

function parseAndValidate(getEnveloped: ReturnType<typeof countingEnvelop>['getEnveloped'], query: string) {
  const enveloped = getEnveloped({});
  const document = enveloped.parse(query);
  return { document, errors: enveloped.validate(enveloped.schema, document) };
}

describe('the operation cache', () => {
  it('parses a query string once and hands out the same document', () => {
    const { calls, getEnveloped } = countingEnvelop();
    const first = parseAndValidate(getEnveloped, '{ hello }');
    const second = parseAndValidate(getEnveloped, '{ hello }');
    expect(second.document).toBe(first.document);
    expect(calls.parse).toBe(1);
    parseAndValidate(getEnveloped, '{ nested { hello } }');
    expect(calls.parse).toBe(2);
  });

  it('fails a query string that did not parse again, with the same error, without parsing it again', () => {
    const { calls, getEnveloped } = countingEnvelop();
    const attempt = () => getEnveloped({}).parse('{ hello');
    const error = (() => {
      try {
        attempt();
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(GraphQLError);
    expect(attempt).toThrow(error as Error);
    expect(calls.parse).toBe(1);
  });

  it('validates a document once, keeping failures as well as successes', () => {
    const { calls, getEnveloped } = countingEnvelop();
    expect(parseAndValidate(getEnveloped, '{ hello }').errors).toEqual([]);
    expect(parseAndValidate(getEnveloped, '{ hello }').errors).toEqual([]);
    const failed = parseAndValidate(getEnveloped, '{ goodbye }').errors;
    expect(failed.map((error: Error) => error.message)).toEqual(['Cannot query field "goodbye" on type "Query".']);
    expect(parseAndValidate(getEnveloped, '{ goodbye }').errors).toBe(failed);
    expect(calls.validate).toBe(2);
  });

  it('keeps results apart for different rule lists', () => {
    const noNesting: ValidationRule = (context) => ({
      Field(node) {
        if (node.name.value === 'nested') context.reportError(new GraphQLError('no nesting'));
      },
    });
    // A plugin that adds a rule only for some requests: the same document must then get both answers.
    const strictWhenAsked: Plugin<{ strict?: boolean }> = {
      onValidate({ context, addValidationRule }) {
        if (context.strict) addValidationRule(noNesting);
      },
    };
    const { calls, getEnveloped } = countingEnvelop([strictWhenAsked as Plugin]);
    const validateAs = (strict: boolean) => {
      const enveloped = getEnveloped({ strict });
      const document: DocumentNode = enveloped.parse('{ nested { hello } }');
      return enveloped.validate(enveloped.schema, document).map((error: Error) => error.message);
    };
    expect(validateAs(true)).toEqual(['no nesting']);
    expect(validateAs(false)).toEqual([]);
    expect(validateAs(true)).toEqual(['no nesting']);
    expect(validateAs(false)).toEqual([]);
    expect(calls.validate).toBe(2);
  });

  it('hits with the query limits, whose rules are built once (armor plugins build new ones per request)', () => {
    const { calls, getEnveloped } = countingEnvelop(useQueryLimits());
    for (let i = 0; i < 3; i++) parseAndValidate(getEnveloped, '{ nested { hello } }');
    expect(calls.validate).toBe(1);
    const tooManyAliases = `{ ${Array.from({ length: 31 }, (_, i) => `a${i}: hello`).join(' ')} }`;
    // The limits are reported as validation errors (armor would throw them out of `validate`), so they are cached.
    for (let i = 0; i < 2; i++) {
      const { errors } = parseAndValidate(getEnveloped, tooManyAliases);
      expect(errors.map((error: Error) => error.message)).toEqual([
        'Syntax Error: Aliases limit of 30 exceeded, found 31.',
      ]);
    }
    expect(calls.validate).toBe(2);
  });

  it('replays a cached parse error through the other plugins, which see it as they saw the first one', () => {
    const seen: unknown[] = [];
    const afterParse: Plugin = {
      onParse:
        () =>
        ({ result }) =>
          void seen.push(result),
    };
    const { calls, getEnveloped } = countingEnvelop([afterParse]);
    for (let i = 0; i < 2; i++) expect(() => getEnveloped({}).parse('{ nested {')).toThrow('Syntax Error');
    expect(calls.parse).toBe(1);
    expect(seen).toHaveLength(2);
    expect(seen[1]).toBe(seen[0]);
    expect(seen[0]).toBeInstanceOf(Error);
  });
});
