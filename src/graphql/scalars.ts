import { GraphQLError, GraphQLScalarType } from 'graphql';
import { DateTimeISOResolver, JSONObjectResolver, JSONResolver, UUIDResolver } from 'graphql-scalars';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../json-depth.ts';
import { builder } from './builder.ts';

builder.addScalarType('UUID', lowerCased(UUIDResolver), {
  description:
    'A UUID in its canonical textual form, e.g. `5b493235-6917-4307-906a-2cd6f1a90b13`. Accepted in upper case or ' +
    'in braces too, and read as the lower-case form ids are stored and returned in.',
});
builder.addScalarType('DateTime', DateTimeISOResolver, {
  description: 'An instant in ISO 8601 form with a time zone, e.g. `2026-11-22T15:53:00.000Z`.',
});
builder.addScalarType('JSON', depthLimited(JSONResolver), {
  description: `Any JSON value: object, array, string, number, boolean or null, nested at most ${MAX_JSON_DEPTH} levels.`,
});
builder.addScalarType('JSONObject', depthLimited(JSONObjectResolver), {
  description: `A JSON object (a string-keyed map), nested at most ${MAX_JSON_DEPTH} levels.`,
});

/**
 * graphql-scalars' JSON scalar, refusing input nested deeper than MAX_JSON_DEPTH (src/json-depth.ts says why). The
 * refusal is a GraphQLError, so a variable is answered as BAD_REQUEST naming it (graphql-errors.ts).
 */
function depthLimited(scalar: GraphQLScalarType): GraphQLScalarType {
  const config = scalar.toConfig();
  const checked = (value: unknown) => {
    if (nestedDeeperThan(value)) throw new GraphQLError(`JSON may nest at most ${MAX_JSON_DEPTH} levels deep.`);
    return value;
  };
  return new GraphQLScalarType({
    ...config,
    parseValue: (value) => checked(config.parseValue(value)),
    parseLiteral: (node, variables) => checked(config.parseLiteral(node, variables)),
  });
}

/**
 * graphql-scalars' UUID scalar, giving the lower-case form of what it accepts: ids are stored and compared in lower
 * case, and an upper-case id passed through as given found nothing wherever it was compared as a string (a
 * `reactorResult` subscription never saw its request complete, a `reactorEvents` filter matched no event).
 */
function lowerCased(scalar: GraphQLScalarType): GraphQLScalarType {
  const config = scalar.toConfig();
  const lower = (value: unknown) => (typeof value === 'string' ? value.toLowerCase() : value);
  return new GraphQLScalarType({
    ...config,
    parseValue: (value) => lower(config.parseValue(value)),
    parseLiteral: (node, variables) => lower(config.parseLiteral(node, variables)),
  });
}
