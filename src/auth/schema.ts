import { PERMISSIONS } from '../auth/permissions.ts';
import { pageRequest } from '../db/pagination.ts';
import { BadRequestError, ForbiddenError, NotFoundError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { toConnection, totalCountFields } from '../graphql/connection.ts';
import { principalOf } from '../graphql/context.ts';
import type { Principal } from './service.ts';
import type { ApplicationRow, TenantRow } from './tables.ts';

export const ApplicationTypeEnum = builder.enumType('ApplicationType', {
  description: 'What an application is for, which bounds the permissions it may hold.',
  values: {
    MANAGEMENT: { description: 'Administers the tenant: reactors, formulas and applications.' },
    PRIVATE: { description: 'A back end: creates, reads and uses tokens, invokes reactors.' },
    PUBLIC: { description: 'A browser or mobile app: may only create tokens.' },
  },
});

export const TenantRef = builder.objectRef<TenantRow>('Tenant').implement({
  description: 'An isolated customer of the gateway: every object belongs to exactly one tenant.',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'Unique identifier of the tenant.' }),
    name: t.exposeString('name', { description: 'Display name of the tenant.' }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When the tenant was created.' }),
  }),
});

export const ApplicationRef = builder.objectRef<ApplicationRow>('Application').implement({
  description: 'A holder of one API key, with a type and a set of permissions.',
  fields: (t) => ({
    id: t.expose('id', { type: 'UUID', description: 'Unique identifier of the application.' }),
    name: t.exposeString('name', { description: 'Display name of the application.' }),
    type: t.field({ type: ApplicationTypeEnum, description: 'The application type.', resolve: (app) => app.type }),
    permissions: t.exposeStringList('permissions', {
      description: `Granted permissions, among: ${PERMISSIONS.join(', ')}.`,
    }),
    tokenContainers: t.exposeStringList('token_containers', {
      nullable: true,
      description:
        'The containers its token permissions cover: a token may be created, read, listed, updated, deleted or ' +
        'detokenized only when one of its containers is one of these or lies below one (`/pci/` covers ' +
        '`/pci/high/`). Null: every container.',
    }),
    keyPrefix: t.exposeString('key_prefix', {
      description: 'The first characters of the API key, to recognise it; the key itself is shown only once.',
    }),
    createdBy: t.expose('created_by', {
      type: 'UUID',
      nullable: true,
      description: 'The application that created this one (null for bootstrap and operator-created ones).',
    }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When the application was created.' }),
    modifiedBy: t.expose('modified_by', {
      type: 'UUID',
      nullable: true,
      description: 'The application that last updated this one or regenerated its key; null if never.',
    }),
    modifiedAt: t.expose('modified_at', {
      type: 'DateTime',
      nullable: true,
      description: 'When the application was last updated or had its key regenerated; null if never.',
    }),
  }),
});

const ViewerRef = builder.objectRef<Principal>('Viewer').implement({
  description: 'The caller, as identified by the API key of the request.',
  fields: (t) => ({
    tenant: t.field({
      type: TenantRef,
      description: 'The tenant the key belongs to.',
      resolve: (principal, _args, context) => context.services.auth.getTenant(principal),
    }),
    application: t.field({
      type: ApplicationRef,
      description: 'The application the key belongs to.',
      resolve: async (principal, _args, context) => {
        const application = await context.services.auth.getApplication(principal, principal.applicationId);
        if (!application) throw new NotFoundError('Application not found.');
        return application;
      },
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({
    type: ViewerRef,
    description: 'Who the API key of this request belongs to.',
    authScopes: { authenticated: true },
    resolve: (_root, _args, context) => principalOf(context),
  }),
);

builder.queryField('applications', (t) =>
  t.connection(
    {
      type: ApplicationRef,
      description: "The tenant's applications, oldest first.",
      authScopes: { permission: 'application:read' },
      resolve: async (_root, args, context) => {
        const principal = principalOf(context);
        const page = pageRequest(args, context.services.config.limits.pageSize);
        const result = await context.services.auth.listApplications(principal, page);
        return toConnection(result, page.afterId !== null, () => context.services.auth.countApplications(principal));
      },
    },
    {
      name: 'ApplicationConnection',
      description: 'A page of applications.',
      fields: totalCountFields('Number of applications of the tenant (computed only when selected).'),
    },
    { name: 'ApplicationEdge', description: 'An application in a page of applications.' },
  ),
);

builder.queryField('application', (t) =>
  t.field({
    type: ApplicationRef,
    nullable: true,
    description: 'An application of the tenant by id; null when there is none (including ids of other tenants).',
    authScopes: { permission: 'application:read' },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The application id.' }) },
    resolve: async (_root, { id }, context) =>
      (await context.services.auth.getApplication(principalOf(context), id)) ?? null,
  }),
);

const CreateApplicationInput = builder.inputType('CreateApplicationInput', {
  description: "A new application of the caller's tenant.",
  fields: (t) => ({
    name: t.string({ required: true, description: 'Display name, at most 200 characters.' }),
    type: t.field({ type: ApplicationTypeEnum, required: true, description: 'The application type.' }),
    permissions: t.stringList({
      required: false,
      description:
        'Permissions to grant, each allowed for the type. By default: every permission for MANAGEMENT; ' +
        'token:create, token:read, token:delete, token:use and reactor:invoke for PRIVATE (reactor:read, which ' +
        "reads reactors' configuration, only when named); token:create for PUBLIC.",
    }),
    tokenContainers: t.stringList({
      required: false,
      description:
        'Limits every token permission to tokens in these containers or below them (`/pci/` covers ' +
        '`/pci/high/`), as in the seeds: token:use is required for each container of tokens a reactor ' +
        'detokenizes. Omitted or null: every container.',
    }),
  }),
});

/** An application with a key shown this once: when it is created, and when its key is replaced. */
function keyedApplicationPayload(name: string, description: string, keyDescription: string) {
  return builder.objectRef<{ application: ApplicationRow; key: string }>(name).implement({
    description,
    fields: (t) => ({
      application: t.field({ type: ApplicationRef, description: 'The application.', resolve: (p) => p.application }),
      key: t.exposeString('key', { description: `${keyDescription} Shown this once; only its hash is stored.` }),
    }),
  });
}

export const CreateApplicationPayload = keyedApplicationPayload(
  'CreateApplicationPayload',
  'A created application and its API key.',
  'The API key.',
);

builder.mutationField('createApplication', (t) =>
  t.field({
    type: CreateApplicationPayload,
    description:
      "Creates an application of the caller's tenant and returns its API key, once. A MANAGEMENT application may " +
      'be given only permissions the calling key holds itself (FORBIDDEN otherwise).',
    authScopes: { permission: 'application:create' },
    errors: { types: [BadRequestError, ForbiddenError] },
    args: { input: t.arg({ type: CreateApplicationInput, required: true, description: 'The application.' }) },
    resolve: (_root, { input }, context) => context.services.auth.createApplication(principalOf(context), input),
  }),
);

builder.mutationField('deleteApplication', (t) =>
  t.field({
    type: ApplicationRef,
    description:
      'Deletes an application; its key stops working at once on this instance, within 5 s on others. A MANAGEMENT ' +
      'application may be deleted only by a key that holds all of its permissions (FORBIDDEN otherwise).',
    authScopes: { permission: 'application:delete' },
    errors: { types: [NotFoundError, ForbiddenError] },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The application id.' }) },
    resolve: (_root, { id }, context) => context.services.auth.deleteApplication(principalOf(context), id),
  }),
);

const UpdateApplicationInput = builder.inputType('UpdateApplicationInput', {
  description: 'Every changeable field of an application (PUT: what is left out is not kept). Its type is fixed.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'Display name, at most 200 characters.' }),
    permissions: t.stringList({
      required: true,
      description: 'The permissions it holds from now on, each one its type may hold.',
    }),
    tokenContainers: t.stringList({
      required: false,
      description:
        'Limits every token permission to tokens in these containers or below them. Omitted or null: every ' +
        'container.',
    }),
  }),
});

builder.mutationField('updateApplication', (t) =>
  t.field({
    type: ApplicationRef,
    description:
      "Replaces an application's name, permissions and token containers. Its key keeps working with the new " +
      'permissions, at once on this instance and within 5 s on others; graphql-ws sockets opened with it are ' +
      'closed with 4403, which graphql-ws clients answer by reconnecting. A MANAGEMENT application may be changed ' +
      'only by a key that holds all of its permissions, and given only permissions that key holds (FORBIDDEN ' +
      'otherwise).',
    authScopes: { permission: 'application:update' },
    errors: { types: [NotFoundError, BadRequestError, ForbiddenError] },
    args: {
      id: t.arg({ type: 'UUID', required: true, description: 'The application id.' }),
      input: t.arg({ type: UpdateApplicationInput, required: true, description: 'The new fields.' }),
    },
    resolve: (_root, { id, input }, context) =>
      context.services.auth.updateApplication(principalOf(context), id, input),
  }),
);

const RegenerateApplicationKeyPayload = keyedApplicationPayload(
  'RegenerateApplicationKeyPayload',
  'An application and its new API key; the old key no longer works.',
  'The new API key.',
);

builder.mutationField('regenerateApplicationKey', (t) =>
  t.field({
    type: RegenerateApplicationKeyPayload,
    description:
      'Replaces the API key of an application and returns the new one, once. The old key stops working at once ' +
      'on this instance, within 5 s on others (its open graphql-ws sockets are closed with 4401). The application ' +
      'keeps its id, permissions and reactors: the way to replace a leaked key. The key of a MANAGEMENT ' +
      'application may be replaced only by a key that holds all of its permissions (FORBIDDEN otherwise).',
    authScopes: { permission: 'application:update' },
    errors: { types: [NotFoundError, ForbiddenError] },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The application id.' }) },
    resolve: (_root, { id }, context) => context.services.auth.regenerateApplicationKey(principalOf(context), id),
  }),
);
