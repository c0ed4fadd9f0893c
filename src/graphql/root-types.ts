import { builder } from './builder.ts';

builder.queryType({ description: 'Reads. Every field is scoped to the tenant of the API key.' });
builder.mutationType({
  description:
    'Writes. Expected failures are returned as members of each result union that implement `Error`. A mutation ' +
    'POSTed with an `Idempotency-Key` header runs once per key and application: a retry gets the first response ' +
    '(`Idempotent-Replayed: true`), the key with another request 422, a retry while the first runs 409.',
});
builder.subscriptionType({
  description:
    'Live updates over graphql-ws (subprotocol graphql-transport-ws) at the same URL; send the key as `connectionParams.apiKey`.',
});
