import { DateTimeISOResolver, JSONObjectResolver, JSONResolver, UUIDResolver } from 'graphql-scalars';
import { builder } from './builder.ts';

builder.addScalarType('UUID', UUIDResolver, {
  description: 'A UUID in its canonical textual form, e.g. `5b493235-6917-4307-906a-2cd6f1a90b13`.',
});
builder.addScalarType('DateTime', DateTimeISOResolver, {
  description: 'An instant in ISO 8601 form with a time zone, e.g. `2026-11-22T15:53:00.000Z`.',
});
builder.addScalarType('JSON', JSONResolver, {
  description: 'Any JSON value: object, array, string, number, boolean or null.',
});
builder.addScalarType('JSONObject', JSONObjectResolver, { description: 'A JSON object (a string-keyed map).' });
