import { pageRequest } from '../db/pagination.ts';
import { BadRequestError, ConflictError, ForbiddenError, InvalidReactorCodeError, NotFoundError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { toConnection, totalCountFields } from '../graphql/connection.ts';
import { principalOf } from '../graphql/context.ts';
import type { ConfigurationOption, FormulaInput, RequestParameter } from './rules.ts';
import type { FormulaRow } from './tables.ts';

export const ReactorFormulaTypeEnum = builder.enumType('ReactorFormulaType', {
  description: 'Who provides a reactor formula.',
  values: {
    OFFICIAL: { description: 'Provided by the gateway operator to every tenant; read-only to tenants.' },
    PRIVATE: { description: 'Written by the tenant and visible only to it.' },
  },
});

export const ReactorFormulaStatusEnum = builder.enumType('ReactorFormulaStatus', {
  description: 'Availability of a reactor formula.',
  values: {
    VERIFIED: { description: 'Verified and generally available.' },
    COMING_SOON: { description: 'Announced, with limited availability.' },
  },
});

export const ParameterTypeEnum = builder.enumType('ParameterType', {
  description: 'Type of a configuration option or request parameter; values are cast to it ("123" -> 123).',
  values: {
    STRING: { description: 'A string; a number or boolean given is turned into its string form.' },
    BOOLEAN: { description: 'true or false; the strings "true" and "false" are accepted.' },
    NUMBER: { description: 'A finite number; a numeric string is accepted.' },
  },
});

const ConfigurationOptionRef = builder.objectRef<ConfigurationOption>('ReactorFormulaConfiguration').implement({
  description: 'A configuration option every reactor of the formula must set (e.g. an API key of a service).',
  fields: (t) => ({
    name: t.exposeString('name', { description: "Key of the option in the reactor's `configuration`." }),
    description: t.exposeString('description', { nullable: true, description: 'What the option is for.' }),
    type: t.field({ type: ParameterTypeEnum, description: 'Type of its value.', resolve: (option) => option.type }),
  }),
});

const RequestParameterRef = builder.objectRef<RequestParameter>('ReactorFormulaRequestParameter').implement({
  description: 'An argument the formula expects in `args` when a reactor is invoked; checked after detokenization.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Name in `args`; dots walk nested objects (`user.address.city`).' }),
    description: t.exposeString('description', { nullable: true, description: 'What the argument is for.' }),
    type: t.field({
      type: ParameterTypeEnum,
      description: 'Type of its value.',
      resolve: (parameter) => parameter.type,
    }),
    optional: t.exposeBoolean('optional', { description: 'Whether the argument may be left out.' }),
  }),
});

export const ReactorFormulaRef = builder.objectRef<FormulaRow>('ReactorFormula').implement({
  description: 'Code that reactors run, with the configuration and request parameters it expects.',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'Unique identifier of the formula.' }),
    name: t.exposeString('name', { description: 'Name of the formula, at most 200 characters.' }),
    description: t.exposeString('description', { nullable: true, description: 'What the formula does.' }),
    type: t.field({ type: ReactorFormulaTypeEnum, description: 'OFFICIAL or PRIVATE.', resolve: (f) => f.type }),
    status: t.field({ type: ReactorFormulaStatusEnum, description: 'Availability.', resolve: (f) => f.status }),
    icon: t.exposeString('icon', { nullable: true, description: 'Base64 data URL of a PNG or JPEG icon.' }),
    code: t.exposeString('code', {
      description:
        'JavaScript (CommonJS) whose `module.exports` is `async function (req)` returning `{ raw, tokenize }`.',
    }),
    configuration: t.field({
      type: [ConfigurationOptionRef],
      description: 'Configuration options every reactor of this formula sets.',
      resolve: (f) => f.configuration,
    }),
    requestParameters: t.field({
      type: [RequestParameterRef],
      description: 'Arguments checked (and cast) when a reactor of this formula is invoked; others pass unchecked.',
      resolve: (f) => f.request_parameters,
    }),
    createdBy: t.expose('created_by', {
      type: 'UUID',
      nullable: true,
      description: 'The application that created the formula (null for official ones).',
    }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When the formula was created.' }),
    modifiedBy: t.expose('modified_by', {
      type: 'UUID',
      nullable: true,
      description: 'The application that last modified the formula; null if never modified.',
    }),
    modifiedAt: t.expose('modified_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When the formula was last modified; null if never modified.',
    }),
  }),
});

const ConfigurationOptionInput = builder.inputType('ReactorFormulaConfigurationInput', {
  description: 'A configuration option of a formula.',
  fields: (t) => ({
    name: t.string({ required: true, description: "Key in a reactor's `configuration`; unique, without dots." }),
    description: t.string({ description: 'What the option is for.' }),
    type: t.field({ type: ParameterTypeEnum, required: true, description: 'Type of its value.' }),
  }),
});

const RequestParameterInput = builder.inputType('ReactorFormulaRequestParameterInput', {
  description: 'A request parameter of a formula.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Name in `args`, unique; dots walk nested objects.' }),
    description: t.string({ description: 'What the argument is for.' }),
    type: t.field({ type: ParameterTypeEnum, required: true, description: 'Type of its value.' }),
    optional: t.boolean({ description: 'Whether the argument may be left out (default false).' }),
  }),
});

/** Create and update take the same fields: an update replaces the whole formula. */
function formulaInputType(name: string, description: string) {
  return builder.inputType(name, {
    description,
    fields: (t) => ({
      name: t.string({ required: true, description: 'Name, at most 200 characters.' }),
      description: t.string({ description: 'What the formula does.' }),
      type: t.field({
        type: ReactorFormulaTypeEnum,
        required: true,
        description: 'Must be PRIVATE: OFFICIAL formulas are published by the operator (FORBIDDEN otherwise).',
      }),
      icon: t.string({ description: 'Base64 data URL of an image/png, image/jpg or image/jpeg icon.' }),
      code: t.string({
        required: true,
        description:
          'JavaScript, at most 50,000 characters; `module.exports` must be a function. Checked in the sandbox.',
      }),
      configuration: t.field({
        type: [ConfigurationOptionInput],
        defaultValue: [],
        description: 'Configuration options reactors of the formula must set (default none).',
      }),
      requestParameters: t.field({
        type: [RequestParameterInput],
        defaultValue: [],
        description: 'Arguments checked when a reactor of the formula is invoked (default none).',
      }),
    }),
  });
}

const CreateReactorFormulaInput = formulaInputType('CreateReactorFormulaInput', 'A new private reactor formula.');
const UpdateReactorFormulaInput = formulaInputType(
  'UpdateReactorFormulaInput',
  'The whole new state of a private reactor formula: absent optional fields become null or empty.',
);

type FormulaArgs = typeof CreateReactorFormulaInput.$inferInput;

/** GraphQL null and absent lists both mean "none": the update is a full replace. */
function toFormulaInput(input: FormulaArgs): FormulaInput {
  return { ...input, configuration: input.configuration ?? [], requestParameters: input.requestParameters ?? [] };
}

builder.queryField('reactorFormula', (t) =>
  t.field({
    type: ReactorFormulaRef,
    nullable: true,
    description: 'A private formula of the tenant or an official one, by id; null when there is none.',
    authScopes: { permission: 'reactor:read' },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The formula id.' }) },
    resolve: async (_root, { id }, context) =>
      (await context.services.formulas.getFormula(principalOf(context), id)) ?? null,
  }),
);

builder.queryField('reactorFormulas', (t) =>
  t.connection(
    {
      type: ReactorFormulaRef,
      description: "The official formulas and the tenant's private ones, oldest first (official ones first).",
      authScopes: { permission: 'reactor:read' },
      args: {
        name: t.arg.string({
          description: 'Case-insensitive substring of the name; `*` matches any run of characters.',
        }),
      },
      resolve: async (_root, args, context) => {
        const principal = principalOf(context);
        const page = pageRequest(args, context.services.config.limits.pageSize);
        const filter = { name: args.name };
        const result = await context.services.formulas.listFormulas(principal, filter, page);
        return toConnection(result, page.afterId !== null, () =>
          context.services.formulas.countFormulas(principal, filter),
        );
      },
    },
    {
      name: 'ReactorFormulaConnection',
      description: 'A page of reactor formulas.',
      edgesField: { description: 'The formulas of this page, each with its cursor.' },
      fields: totalCountFields('Number of formulas matching the filter (computed only when selected).'),
    },
    {
      name: 'ReactorFormulaEdge',
      description: 'A formula in a page of formulas.',
      nodeField: { description: 'The formula.' },
    },
  ),
);

builder.mutationField('createReactorFormula', (t) =>
  t.field({
    type: ReactorFormulaRef,
    description: 'Creates a private formula after checking its fields and compiling its code in the sandbox.',
    authScopes: { permission: 'reactor:create' },
    errors: {
      types: [BadRequestError, InvalidReactorCodeError, ForbiddenError],
      union: { description: 'The created formula, or why it was not created.' },
    },
    args: { input: t.arg({ type: CreateReactorFormulaInput, required: true, description: 'The formula.' }) },
    resolve: (_root, { input }, context) =>
      context.services.formulas.createFormula(principalOf(context), toFormulaInput(input)),
  }),
);

builder.mutationField('updateReactorFormula', (t) =>
  t.field({
    type: ReactorFormulaRef,
    description:
      'Replaces every field of a private formula (PUT). Official formulas are read-only: FORBIDDEN. Its reactors are ' +
      'left as they are: one whose configuration the new contract does not accept is refused when invoked ' +
      '(BAD_REQUEST naming each `configuration.<NAME>`) until it is updated to match.',
    authScopes: { permission: 'reactor:update' },
    errors: {
      types: [BadRequestError, InvalidReactorCodeError, ForbiddenError, NotFoundError],
      union: { description: 'The updated formula, or why it was not updated.' },
    },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The formula id.' }),
      input: t.arg({ type: UpdateReactorFormulaInput, required: true, description: 'The new state of the formula.' }),
    },
    resolve: (_root, { id, input }, context) =>
      context.services.formulas.updateFormula(principalOf(context), id, toFormulaInput(input)),
  }),
);

builder.mutationField('deleteReactorFormula', (t) =>
  t.field({
    type: ReactorFormulaRef,
    description: 'Deletes a private formula no reactor uses (CONFLICT otherwise). Official ones: FORBIDDEN.',
    authScopes: { permission: 'reactor:delete' },
    errors: {
      types: [NotFoundError, ForbiddenError, ConflictError],
      union: { description: 'The deleted formula, or why it was not deleted.' },
    },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The formula id.' }) },
    resolve: (_root, { id }, context) => context.services.formulas.deleteFormula(principalOf(context), id),
  }),
);
