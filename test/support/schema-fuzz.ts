import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  buildSchema,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLOutputType,
  type GraphQLSchema,
  getNamedType,
  isAbstractType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isRequiredArgument,
  isScalarType,
} from 'graphql';

/**
 * Schema-driven generators for test/graphql/input-fuzz.test.ts: operations that select every leaf of a root field,
 * fast-check values for its arguments, and copies of accepted arguments with unstorable text in one place. All of
 * it is read from the committed schema.graphql, so a new field is covered without a change here.
 */

export const schema: GraphQLSchema = buildSchema(
  readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'),
);

export type RootField = GraphQLField<unknown, unknown>;

/** Every query and mutation field of the schema. */
export function rootFields(): { kind: 'query' | 'mutation'; field: RootField }[] {
  return (['query', 'mutation'] as const).flatMap((kind) => {
    const root = kind === 'query' ? schema.getQueryType() : schema.getMutationType();
    return Object.values(root?.getFields() ?? {}).map((field) => ({ kind, field }));
  });
}

/** Values for each argument of `field`; ids are mostly those of `knownIds`, objects that exist. */
export function argumentsArb(field: RootField, knownIds: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(Object.fromEntries(field.args.map((arg) => [arg.name, inputArb(arg.type, knownIds)])));
}

const odd = [
  '',
  ' ',
  'a',
  '\u0000',
  'nul\u0000inside',
  '\ud800',
  '😀',
  '{{',
  '}}',
  '{{ }}',
  '{{ 00000000-0000-0000-0000-000000000000 }}',
  '{{ x | json: "$.a" }}',
  '__proto__',
  'constructor',
  "'; drop table reactors; --",
  'http://127.0.0.1:1/hook',
  'https://example.invalid/hook',
  '/general/high/',
  'x'.repeat(5_000),
  // Code that compiles, so a formula with odd names and descriptions gets as far as its INSERT.
  'module.exports = async (req) => ({ raw: req.args ?? null });',
];

export const stringArb = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...odd) },
  { weight: 1, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);
export const intArb = fc.oneof(
  fc.integer({ min: -3, max: 150 }),
  fc.constantFrom(2_147_483_647, -2_147_483_648, 1_000_000),
);
// JSON whose strings and keys come from the odd ones above, nested a few levels, plus one 40 levels deep.
export const { json: jsonArb } = fc.letrec((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    stringArb,
    intArb,
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 3 }),
    fc.dictionary(
      fc.oneof(stringArb, fc.constantFrom('__proto__', 'constructor', 'a.b', 'card', 'number')),
      tie('json'),
      {
        maxKeys: 3,
      },
    ),
    fc.constant(Array.from({ length: 40 }).reduce<object>((inner) => ({ inner }), {})),
  ),
}));

function uuidArb(knownIds: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...knownIds) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.constant('00000000-0000-0000-0000-000000000000') },
  );
}

/**
 * Now and then a value of the wrong type for its variable (an id that is no UUID, an Int out of range, an unknown
 * enum value): graphql-js refuses it before execution, and that refusal must reach the client as BAD_REQUEST.
 */
function sometimesMistyped(arb: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 15, arbitrary: arb },
    { weight: 1, arbitrary: fc.constantFrom('not-a-uuid', 2 ** 31, 1.5, 'NOT_A_VALUE', [], {}) },
  );
}

function scalarArb(name: string, knownIds: readonly string[]): fc.Arbitrary<unknown> {
  switch (name) {
    case 'String':
    case 'ID':
      return stringArb;
    case 'Int':
      return intArb;
    case 'Float':
      return fc.double({ noNaN: true });
    case 'Boolean':
      return fc.boolean();
    case 'UUID':
      return uuidArb(knownIds);
    case 'DateTime':
      return fc.oneof(
        fc
          .date({ min: new Date('1970-01-01'), max: new Date('2400-01-01'), noInvalidDate: true })
          .map((d) => d.toISOString()),
        fc.constantFrom('2099-01-01T00:00:00Z', '2000-01-01T00:00:00.000+14:00'),
      );
    case 'JSON':
      return jsonArb;
    case 'JSONObject':
      return fc.dictionary(stringArb, jsonArb, { maxKeys: 5 });
    default:
      throw new Error(`no generator for scalar ${name}: add one`);
  }
}

/** Values for an input type; nullable positions are often left out (JSON.stringify drops undefined) or null. */
function inputArb(type: GraphQLInputType, knownIds: readonly string[]): fc.Arbitrary<unknown> {
  if (isNonNullType(type)) return requiredInputArb(type.ofType, knownIds);
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 3, arbitrary: requiredInputArb(type, knownIds) },
  );
}

function requiredInputArb(type: GraphQLInputType, knownIds: readonly string[]): fc.Arbitrary<unknown> {
  if (isListType(type)) return fc.array(inputArb(type.ofType, knownIds), { maxLength: 4 });
  if (isEnumType(type)) return sometimesMistyped(fc.constantFrom(...type.getValues().map((value) => value.name)));
  if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields());
    return fc.record(Object.fromEntries(fields.map((field) => [field.name, inputArb(field.type, knownIds)])), {
      requiredKeys: fields.filter((field) => isNonNullType(field.type)).map((field) => field.name),
    });
  }
  const name = (type as GraphQLNamedType).name;
  const scalar = scalarArb(name, knownIds);
  return name === 'JSON' || name === 'JSONObject' ? scalar : sometimesMistyped(scalar);
}

/**
 * A selection of every leaf of an output type down to `depth` levels, skipping fields that need arguments. Fields
 * of sibling fragments that share a name but not a type are aliased, so the document stays valid.
 */
function selection(type: GraphQLOutputType, depth: number): string {
  const named = getNamedType(type);
  if (isLeafType(named)) return '';
  if (isAbstractType(named)) {
    const seen = new Map<string, string>();
    const fragments = schema
      .getPossibleTypes(named)
      .map((member) => `... on ${member.name} { ${fieldsOf(member.getFields(), depth, seen, member.name)} }`);
    return `{ __typename ${fragments.join(' ')} }`;
  }
  if (isObjectType(named)) return `{ ${fieldsOf(named.getFields(), depth, new Map(), named.name)} }`;
  return '';
}

function fieldsOf(
  fields: Record<string, GraphQLField<unknown, unknown>>,
  depth: number,
  seen: Map<string, string>,
  owner: string,
): string {
  const parts = ['__typename'];
  for (const field of Object.values(fields)) {
    if (field.args.some(isRequiredArgument)) continue;
    const leaf = isLeafType(getNamedType(field.type));
    if (!leaf && depth <= 1) continue;
    const shape = String(field.type);
    const alias = seen.has(field.name) && seen.get(field.name) !== shape ? `${owner}_${field.name}: ` : '';
    if (!alias) seen.set(field.name, shape);
    parts.push(`${alias}${field.name} ${leaf ? '' : selection(field.type, depth - 1)}`);
  }
  return parts.join(' ');
}

export function operationFor(kind: 'query' | 'mutation', field: GraphQLField<unknown, unknown>): string {
  const variables = field.args.map((arg) => `$${arg.name}: ${String(arg.type)}`);
  const args = field.args.map((arg) => `${arg.name}: $${arg.name}`);
  const head = variables.length ? `(${variables.join(', ')})` : '';
  const call = args.length ? `(${args.join(', ')})` : '';
  return `${kind} Fuzz${head} { ${field.name}${call} ${selection(field.type, 3)} }`;
}

/** Every `{ code, status }` object in the data: the Error results, wherever they sit. */
export function errorResults(value: unknown, found: { code: string; status: number; message: string }[] = []) {
  if (Array.isArray(value)) for (const item of value) errorResults(item, found);
  else if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (typeof record.code === 'string' && typeof record.status === 'number')
      found.push(record as { code: string; status: number; message: string });
    for (const item of Object.values(record)) errorResults(item, found);
  }
  return found;
}

/** Text that Postgres text and jsonb columns cannot hold (src/storable-text.ts). */
export const UNSTORABLE = ['nul\u0000inside', 'x\ud800'];

/**
 * Copies of `vars` with one free-text position replaced by each UNSTORABLE string: String arguments and fields,
 * and the strings and keys inside JSON arguments. Ids, enums and dates are left alone.
 */
export function textVariants(
  vars: Record<string, unknown>,
  args: readonly { name: string; type: GraphQLInputType }[],
): Record<string, unknown>[] {
  type Replace = (next: unknown) => void;
  const withItem = (list: unknown[], index: number, next: unknown) => list.map((v, j) => (j === index ? next : v));
  const visitJson = (value: unknown, replace: Replace) => {
    if (typeof value === 'string') for (const text of UNSTORABLE) replace(text);
    else if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) visitJson(item, (next) => replace(withItem(value, i, next)));
    } else if (value && typeof value === 'object') {
      const entries = Object.entries(value);
      for (const [i, [key, item]] of entries.entries()) {
        for (const text of UNSTORABLE) replace(Object.fromEntries(entries.map((e, j) => (j === i ? [text, item] : e))));
        visitJson(item, (next) => replace({ ...value, [key]: next }));
      }
    }
  };
  const visit = (value: unknown, type: GraphQLInputType, replace: Replace) => {
    if (value === undefined || value === null) return;
    const inner = isNonNullType(type) ? type.ofType : type;
    if (isListType(inner) && Array.isArray(value)) {
      for (const [i, item] of value.entries()) visit(item, inner.ofType, (next) => replace(withItem(value, i, next)));
    } else if (isInputObjectType(inner) && typeof value === 'object') {
      for (const field of Object.values(inner.getFields())) {
        const fieldValue = (value as Record<string, unknown>)[field.name];
        visit(fieldValue, field.type, (next) => replace({ ...value, [field.name]: next }));
      }
    } else if (isScalarType(inner)) {
      if (inner.name === 'String') for (const text of UNSTORABLE) replace(text);
      else if (inner.name === 'JSON' || inner.name === 'JSONObject') visitJson(value, replace);
    }
  };
  const variants: Record<string, unknown>[] = [];
  for (const arg of args) visit(vars[arg.name], arg.type, (next) => variants.push({ ...vars, [arg.name]: next }));
  return variants;
}
