import { createContextCache } from '@pothos/core';
import DataLoader from 'dataloader';
import type { GraphQLResolveInfo } from 'graphql';
import { ApplicationRef } from '../auth/schema.ts';
import { MAX_LISTED_IDS, pageRequest } from '../db/pagination.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { ReactorFormulaRef } from '../formulas/schema.ts';
import type { FormulaRow } from '../formulas/tables.ts';
import { builder } from '../graphql/builder.ts';
import { toConnection, totalCountFields } from '../graphql/connection.ts';
import { type GraphQLContext, principalOf } from '../graphql/context.ts';
import { selectsPath } from '../graphql/selection.ts';
import type { ReactorRow } from './tables.ts';

/**
 * The formulas of the reactors one request reads, one query per batch. The foreign key keeps a reactor's formula
 * alive, so a missing one means the reactor, read earlier in this request, was deleted since and its formula after
 * it: NOT_FOUND, not a server failure. `reactors` and `reactor` read the formulas they will show before answering,
 * and leave such a reactor out (`withoutDeleted`), as they would have a moment later.
 */
const formulaLoader = createContextCache(
  (context: GraphQLContext) =>
    new DataLoader<string, FormulaRow>(async (ids) => {
      const formulas = await context.services.formulas.loadFormulas(principalOf(context).tenantId, ids);
      const byId = new Map(formulas.map((formula) => [formula.id, formula]));
      return ids.map((id) => byId.get(id) ?? new NotFoundError('The reactor was deleted while it was being read.'));
    }),
);

/**
 * The reactors whose formulas are still there, when the operation selects `formula` at `path` below the field
 * (otherwise all of them, without reading a formula): see formulaLoader.
 */
async function withoutDeleted(
  reactors: ReactorRow[],
  context: GraphQLContext,
  info: GraphQLResolveInfo,
  path: readonly string[],
): Promise<ReactorRow[]> {
  if (reactors.length === 0 || !selectsPath(info, path)) return reactors;
  const formulas = await formulaLoader(context).loadMany(reactors.map((reactor) => reactor.formula_id));
  const failure = formulas.find((formula) => formula instanceof Error && !(formula instanceof NotFoundError));
  if (failure) throw failure;
  return reactors.filter((_reactor, i) => !(formulas[i] instanceof NotFoundError));
}

export const ReactorRef = builder.objectRef<ReactorRow>('Reactor').implement({
  description: 'A configured instance of a reactor formula, invoked with `react`.',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'Unique identifier of the reactor.' }),
    tenantId: t.expose('tenant_id', { type: 'UUID', description: 'The tenant that owns the reactor.' }),
    name: t.exposeString('name', { description: 'Name of the reactor, at most 200 characters.' }),
    // Both relations go through request-scoped DataLoaders: a page of reactors costs one query per relation.
    formula: t.field({
      type: ReactorFormulaRef,
      description: 'The formula the reactor runs.',
      resolve: (reactor, _args, context) => formulaLoader(context).load(reactor.formula_id),
    }),
    applicationId: t.expose('application_id', {
      type: 'UUID',
      nullable: true,
      description: 'The id of the application whose key the formula gets as `req.bt`; null for none.',
    }),
    application: t.loadable({
      type: ApplicationRef,
      nullable: true,
      description:
        'The PUBLIC or PRIVATE application whose key the formula gets as `req.bt`; null for none. Its details need ' +
        '`application:read`, as `application(id)` does (`applicationId` does not).',
      authScopes: { permission: 'application:read' },
      sort: (application) => application.id,
      load: (ids: string[], context: GraphQLContext) =>
        context.services.auth.loadApplications(principalOf(context).tenantId, ids),
      resolve: (reactor) => reactor.application_id,
    }),
    configuration: t.field({
      type: 'JSONObject',
      description: "Values of the formula's configuration options, cast to their declared types.",
      resolve: (reactor) => reactor.configuration,
    }),
    createdBy: t.expose('created_by', {
      type: 'UUID',
      nullable: true,
      description: 'The application that created the reactor.',
    }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When the reactor was created.' }),
    modifiedBy: t.expose('modified_by', {
      type: 'UUID',
      nullable: true,
      description: 'The application that last updated or patched the reactor; null if never modified.',
    }),
    modifiedAt: t.expose('modified_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When the reactor was last updated or patched (moves forward on every change); null if never.',
    }),
  }),
});

const CreateReactorInput = builder.inputType('CreateReactorInput', {
  description: 'A new reactor of a formula.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Name, at most 200 characters.' }),
    formulaId: t.field({
      type: 'UUID',
      required: true,
      description: 'A private formula of the tenant or an official one.',
    }),
    configuration: t.field({
      type: 'JSONObject',
      // No defaultValue: a JSONObject default cannot be printed in SDL. Absent means `{}` (see the resolvers).
      description: "A value for each of the formula's configuration options, and nothing else; absent means `{}`.",
    }),
    applicationId: t.field({
      type: 'UUID',
      description: 'A PUBLIC or PRIVATE application of the tenant whose key the formula gets as `req.bt`.',
    }),
  }),
});

const UpdateReactorInput = builder.inputType('UpdateReactorInput', {
  description: 'The whole new state of a reactor (its formula cannot change): an absent applicationId detaches it.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Name, at most 200 characters.' }),
    configuration: t.field({
      type: 'JSONObject',
      // No defaultValue: a JSONObject default cannot be printed in SDL. Absent means `{}` (see the resolvers).
      description: "A value for each of the formula's configuration options, and nothing else; absent means `{}`.",
    }),
    applicationId: t.field({
      type: 'UUID',
      description: 'A PUBLIC or PRIVATE application of the tenant; absent or null for none.',
    }),
  }),
});

const PatchReactorInput = builder.inputType('PatchReactorInput', {
  description:
    'An RFC 7386 merge-patch of a reactor: an absent field keeps its value, null clears it; the result is validated.',
  fields: (t) => ({
    name: t.string({ description: 'New name; null is refused (a reactor needs a name).' }),
    configuration: t.field({
      type: 'JSONObject',
      description: 'Merged key by key into the configuration: a null value removes that key; null empties it.',
    }),
    applicationId: t.field({ type: 'UUID', description: 'New application; null detaches the application.' }),
  }),
});

builder.queryField('reactor', (t) =>
  t.field({
    type: ReactorRef,
    nullable: true,
    description: 'A reactor of the tenant by id; null when there is none (including ids of other tenants).',
    authScopes: { permission: 'reactor:read' },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }) },
    resolve: async (_root, { id }, context, info) => {
      const reactor = await context.services.reactors.getReactor(principalOf(context), id);
      if (!reactor) return null;
      const [kept] = await withoutDeleted([reactor], context, info, ['formula']);
      return kept ?? null;
    },
  }),
);

builder.queryField('reactors', (t) =>
  t.connection(
    {
      type: ReactorRef,
      description: "The tenant's reactors, oldest first, optionally filtered.",
      authScopes: { permission: 'reactor:read' },
      args: {
        ids: t.arg({ type: ['UUID'], description: `Only these reactors (at most ${MAX_LISTED_IDS} ids).` }),
        name: t.arg.string({
          description: 'Case-insensitive substring of the name; `*` matches any run of characters.',
        }),
      },
      resolve: async (_root, args, context, info) => {
        const principal = principalOf(context);
        const page = pageRequest(args, context.services.config.limits.pageSize);
        const filter = { ids: args.ids, name: args.name };
        const result = await context.services.reactors.listReactors(principal, filter, page);
        result.rows = await withoutDeleted(result.rows, context, info, ['edges', 'node', 'formula']);
        return toConnection(result, page.afterId !== null, () =>
          context.services.reactors.countReactors(principal, filter),
        );
      },
    },
    {
      name: 'ReactorConnection',
      description: 'A page of reactors.',
      edgesField: { description: 'The reactors of this page, each with its cursor.' },
      fields: totalCountFields('Number of reactors matching the filter (computed only when selected).'),
    },
    {
      name: 'ReactorEdge',
      description: 'A reactor in a page of reactors.',
      nodeField: { description: 'The reactor.' },
    },
  ),
);

builder.mutationField('createReactor', (t) =>
  t.field({
    type: ReactorRef,
    description:
      'Creates a reactor of a formula. An unknown formulaId or applicationId is BAD_REQUEST naming the field.',
    authScopes: { permission: 'reactor:create' },
    errors: {
      types: [BadRequestError],
      union: { description: 'The created reactor, or why it was not created.' },
    },
    args: { input: t.arg({ type: CreateReactorInput, required: true, description: 'The reactor.' }) },
    resolve: (_root, { input }, context) =>
      context.services.reactors.createReactor(principalOf(context), {
        ...input,
        configuration: input.configuration ?? {},
      }),
  }),
);

builder.mutationField('updateReactor', (t) =>
  t.field({
    type: ReactorRef,
    description: 'Replaces name, configuration and application of a reactor (PUT); the formula is kept.',
    authScopes: { permission: 'reactor:update' },
    errors: {
      types: [BadRequestError, NotFoundError],
      union: { description: 'The updated reactor, or why it was not updated.' },
    },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }),
      input: t.arg({ type: UpdateReactorInput, required: true, description: 'The new state of the reactor.' }),
    },
    resolve: (_root, { id, input }, context) =>
      context.services.reactors.updateReactor(principalOf(context), id, {
        ...input,
        configuration: input.configuration ?? {},
      }),
  }),
);

builder.mutationField('patchReactor', (t) =>
  t.field({
    type: ReactorRef,
    description: 'Changes some fields of a reactor (RFC 7386 merge-patch), then validates the result.',
    authScopes: { permission: 'reactor:update' },
    errors: {
      types: [BadRequestError, NotFoundError],
      union: { description: 'The patched reactor, or why it was not patched.' },
    },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }),
      input: t.arg({ type: PatchReactorInput, required: true, description: 'The merge-patch.' }),
    },
    // graphql-js leaves absent input fields out of the object and keeps explicit nulls: exactly the distinction
    // a merge-patch needs, so the input goes to the service as it came.
    resolve: (_root, { id, input }, context) => context.services.reactors.patchReactor(principalOf(context), id, input),
  }),
);

builder.mutationField('deleteReactor', (t) =>
  t.field({
    type: ReactorRef,
    description: 'Deletes a reactor.',
    authScopes: { permission: 'reactor:delete' },
    errors: {
      types: [NotFoundError],
      union: { description: 'The deleted reactor, or why it was not deleted.' },
    },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The reactor id.' }) },
    resolve: (_root, { id }, context) => context.services.reactors.deleteReactor(principalOf(context), id),
  }),
);
