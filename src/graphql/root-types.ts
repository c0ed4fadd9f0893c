import { builder } from './builder.ts';

builder.queryType({ description: 'Reads. Every field is scoped to the tenant of the API key.' });
builder.mutationType({
  description: 'Writes. Expected failures are returned as members of each result union that implement `Error`.',
});
