import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type { Permission } from '../auth/permissions.ts';
import type { FieldErrors } from '../errors.ts';
import type { GraphQLContext } from './context.ts';
import { authorizationError } from './graphql-errors.ts';

/**
 * The scopes of one request. A class rather than an object of arrow functions: under tsx every named closure is
 * renamed with `Object.defineProperty` each time it is made, three per request here. The plugin calls the loaders
 * bound to this object.
 */
class RequestScopes {
  readonly authenticated: boolean;
  readonly admin: boolean;

  constructor(private readonly context: GraphQLContext) {
    this.authenticated = context.principal !== null;
    this.admin = context.isAdmin;
  }

  permission(permission: Permission): boolean {
    return this.context.principal?.permissions.has(permission) ?? false;
  }

  anyPermission(permissions: Permission[]): boolean {
    const granted = this.context.principal?.permissions;
    return granted !== undefined && permissions.some((permission) => granted.has(permission));
  }
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: { authenticated: boolean; permission: Permission; anyPermission: Permission[]; admin: boolean };
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
  Scalars: {
    UUID: { Input: string; Output: string };
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
    JSONObject: { Input: Record<string, unknown>; Output: Record<string, unknown> | FieldErrors };
  };
}>({
  plugins: [ScopeAuthPlugin, ErrorsPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // Refuse a subscription when it starts, not on its first event.
    authorizeOnSubscribe: true,
    authScopes: (context) => new RequestScopes(context),
    // Auth failures are GraphQL errors (not union members) with extensions { code, status }: see ./graphql-errors.ts.
    unauthorizedError: (_parent, context, _info, result) => authorizationError(context, result.message),
  },
  errors: { directResult: true },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeFieldOptions: { nullable: false },
    pageInfoTypeOptions: { description: 'Where a page of a list stands in the whole list (Relay).' },
    // Nodes are fetched by their own typed queries (`reactor(id)`...), so no global `node` field.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});
