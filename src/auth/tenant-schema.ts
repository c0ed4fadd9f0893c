import { pageRequest } from '../db/pagination.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { builder } from '../graphql/builder.ts';
import { toConnection, totalCountFields } from '../graphql/connection.ts';
import { CreateApplicationPayload, TenantRef } from './schema.ts';
import type { TenantRow } from './tables.ts';

// The operator's operations (the `ADMIN_API_KEY`): tenants are created, listed and deleted here, and given a new
// management key when they lost theirs; everything else inside a tenant is its own keys' business.

const CreateTenantInput = builder.inputType('CreateTenantInput', {
  description: 'A new tenant.',
  fields: (t) => ({ name: t.string({ required: true, description: 'Display name, at most 200 characters.' }) }),
});

const CreateTenantPayload = builder
  .objectRef<{ tenant: TenantRow; managementKey: string; privateKey: string }>('CreateTenantPayload')
  .implement({
    description: 'A created tenant and the keys of its two first applications, shown once.',
    fields: (t) => ({
      tenant: t.field({ type: TenantRef, description: 'The tenant.', resolve: (p) => p.tenant }),
      managementKey: t.exposeString('managementKey', { description: 'Key of its management application.' }),
      privateKey: t.exposeString('privateKey', { description: 'Key of its private application.' }),
    }),
  });

builder.mutationField('createTenant', (t) =>
  t.field({
    type: CreateTenantPayload,
    description: 'Operator only (the `ADMIN_API_KEY`): creates a tenant with a management and a private application.',
    authScopes: { admin: true },
    errors: { types: [BadRequestError] },
    args: { input: t.arg({ type: CreateTenantInput, required: true, description: 'The tenant.' }) },
    resolve: (_root, { input }, context) => context.services.auth.createTenant(input.name),
  }),
);

builder.queryField('tenants', (t) =>
  t.connection(
    {
      type: TenantRef,
      description: 'Operator only (the `ADMIN_API_KEY`): every tenant, oldest first.',
      authScopes: { admin: true },
      resolve: async (_root, args, context) => {
        const page = pageRequest(args, context.services.config.limits.pageSize);
        const result = await context.services.auth.listTenants(page);
        return toConnection(result, page.afterId !== null, () => context.services.auth.countTenants());
      },
    },
    {
      name: 'TenantConnection',
      description: 'A page of tenants.',
      fields: totalCountFields('Number of tenants (computed only when selected).'),
    },
    { name: 'TenantEdge', description: 'A tenant in a page of tenants.' },
  ),
);

builder.mutationField('deleteTenant', (t) =>
  t.field({
    type: TenantRef,
    description:
      'Operator only (the `ADMIN_API_KEY`): deletes a tenant and everything it owns, for good: its applications ' +
      'and keys, formulas, reactors, tokens, transactions and async results, in one database transaction. Its keys ' +
      'stop working at once on this instance and within 5 s on others; its open graphql-ws sockets are closed ' +
      'within 5 s. Returns the tenant as it was.',
    authScopes: { admin: true },
    errors: { types: [NotFoundError] },
    args: { id: t.arg({ type: 'UUID', required: true, description: 'The tenant id.' }) },
    resolve: (_root, { id }, context) => context.services.auth.deleteTenant(id),
  }),
);

builder.mutationField('createManagementKey', (t) =>
  t.field({
    type: CreateApplicationPayload,
    description:
      'Operator only (the `ADMIN_API_KEY`): creates a MANAGEMENT application holding every management permission ' +
      'in a tenant and returns its key, once: the way back into a tenant whose management keys were lost, deleted ' +
      'or stripped of their permissions (`npm run create-management-key` does the same from a shell).',
    authScopes: { admin: true },
    errors: { types: [NotFoundError] },
    args: { tenantId: t.arg({ type: 'UUID', required: true, description: 'The tenant id.' }) },
    resolve: (_root, { tenantId }, context) => context.services.auth.createManagementKey(tenantId),
  }),
);
