import { type GraphQLSchema, type GraphQLUnionType, isObjectType, isUnionType } from 'graphql';

/**
 * Pothos' errors and relay plugins generate a few types (mutation result unions, PageInfo, edges) whose options do
 * not all take a description. Every type and field of the public schema must be described, so the generated ones are
 * described here, once, by their shape.
 */
export function describeGeneratedTypes(schema: GraphQLSchema): GraphQLSchema {
  const mutations = schema.getMutationType()?.getFields() ?? {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (isUnionType(type) && !type.description) {
      const field = Object.values(mutations).find((f) => f.type.toString().replace('!', '') === type.name);
      type.description = field
        ? `The result of \`${field.name}\`: ${successOf(type)} on success, or one of the errors (each implements \`Error\`).`
        : 'A result: the value on success, or one of the errors (each implements `Error`).';
    }
    if (!isObjectType(type)) continue;
    const fields = type.getFields();
    for (const field of Object.values(fields)) {
      for (const arg of field.args) arg.description ??= CONNECTION_ARGS[arg.name];
    }
    for (const [name, text] of Object.entries(FIELD_DESCRIPTIONS)) {
      const field = fields[name];
      if (field && !field.description && (name !== 'node' || type.name.endsWith('Edge'))) field.description = text;
    }
  }
  return schema;
}

/** The member that is not an error (errors implement the `Error` interface). */
function successOf(union: GraphQLUnionType): string {
  const success = union.getTypes().find((member) => !member.getInterfaces().some((i) => i.name === 'Error'));
  return success?.name ?? 'the result';
}

const CONNECTION_ARGS: Record<string, string> = {
  first: 'How many items to return (default 20, at most 100).',
  after: 'Return the items after this cursor (`pageInfo.endCursor` of the previous page).',
  last: 'Not supported: lists page forward only (use `first`/`after`).',
  before: 'Not supported: lists page forward only (use `first`/`after`).',
};

const FIELD_DESCRIPTIONS: Record<string, string> = {
  edges: 'The items of this page, each with its cursor.',
  pageInfo: 'Where this page stands in the whole list.',
  cursor: 'Opaque cursor of this item; pass it as `after` to get the items that follow.',
  node: 'The item.',
  hasNextPage: 'Whether more items follow this page.',
  hasPreviousPage: 'Whether this page was requested with a cursor (items precede it).',
  startCursor: 'Cursor of the first item of this page.',
  endCursor: 'Cursor of the last item of this page; pass it as `after` for the next page.',
};
