import { DEFAULT_PERMISSIONS } from '../../src/auth/permissions.ts';
import type { Principal } from '../../src/auth/service.ts';
import type { GraphQLResponse, TestGateway, TestTenant } from '../support/gateway.ts';

/** GraphQL documents and helpers shared by the token and transaction tests. */

export const TOKEN_FIELDS =
  'id type data mask fingerprint metadata containers createdBy createdAt expiresAt modifiedBy modifiedAt';
// Aliased: `Error.status` (Int) and `Transaction.status` (enum) cannot share a response name in one selection.
const ERROR_FIELDS = '... on Error { code httpStatus: status message errors }';

export const CREATE_TOKEN = `mutation($input: CreateTokenInput!, $tx: UUID) { createToken(input: $input, transactionId: $tx) {
  __typename ... on Token { ${TOKEN_FIELDS} } ${ERROR_FIELDS} } }`;
export const READ_TOKEN = `query($id: UUID!, $tx: UUID) { token(id: $id, transactionId: $tx) { ${TOKEN_FIELDS} } }`;
export const DELETE_TOKEN = `mutation($id: UUID!, $tx: UUID) { deleteToken(id: $id, transactionId: $tx) {
  __typename ... on Token { id } ${ERROR_FIELDS} } }`;

export const UPDATE_TOKEN = `mutation($id: UUID!, $input: UpdateTokenInput!, $tx: UUID) {
  updateToken(id: $id, input: $input, transactionId: $tx) { __typename ... on Token { ${TOKEN_FIELDS} } ${ERROR_FIELDS} } }`;

export const LIST_TOKENS = `query($first: Int, $after: String, $ids: [UUID!], $type: TokenType, $fingerprint: String,
  $metadata: JSONObject, $container: String, $tx: UUID) {
  tokens(first: $first, after: $after, ids: $ids, type: $type, fingerprint: $fingerprint, metadata: $metadata,
    container: $container, transactionId: $tx) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { ${TOKEN_FIELDS} } } } }`;

/** Every token of the `tokens` list with these filters, page after page (100 a page), and its totalCount. */
export async function listAllTokens(
  gateway: TestGateway,
  key: string,
  filters: Record<string, unknown> = {},
): Promise<{ tokens: any[]; totalCount: number }> {
  const tokens: any[] = [];
  let after: string | null = null;
  let totalCount = -1;
  for (;;) {
    const page: any = data(await gateway.gql(LIST_TOKENS, { ...filters, first: 100, after }, key), 'tokens');
    tokens.push(...page.edges.map((edge: any) => edge.node));
    totalCount = page.totalCount;
    if (!page.pageInfo.hasNextPage) return { tokens, totalCount };
    after = page.pageInfo.endCursor;
  }
}

const TRANSACTION_FIELDS = 'id createdAt createdBy expiresAt status';
export const CREATE_TRANSACTION = `mutation { createTransaction { ${TRANSACTION_FIELDS} } }`;
export const READ_TRANSACTION = `query($id: UUID!) { transaction(id: $id) { ${TRANSACTION_FIELDS} } }`;
export const COMMIT_TRANSACTION = `mutation($id: UUID!) { commitTransaction(id: $id) {
  __typename ... on Transaction { ${TRANSACTION_FIELDS} } ${ERROR_FIELDS} } }`;
export const ROLLBACK_TRANSACTION = `mutation($id: UUID!) { rollbackTransaction(id: $id) {
  __typename ... on Transaction { ${TRANSACTION_FIELDS} } ${ERROR_FIELDS} } }`;

export const UNKNOWN_ID = '01a204cc-a83d-77b0-9658-e28eab878300';

export const CARD_NUMBER = '4242424242424242';
export function card(overrides: Record<string, unknown> = {}) {
  return {
    number: CARD_NUMBER,
    expiration_month: 12,
    expiration_year: new Date().getUTCFullYear() + 3,
    cvc: '123',
    ...overrides,
  };
}

export function data<T = any>(response: GraphQLResponse, field: string): T {
  if (response.errors) throw new Error(`GraphQL errors: ${JSON.stringify(response.errors)}`);
  return response.data?.[field] as T;
}

export async function createToken(
  gateway: TestGateway,
  key: string,
  input: Record<string, unknown>,
  tx?: string,
): Promise<any> {
  return data(await gateway.gql(CREATE_TOKEN, { input, tx }, key), 'createToken');
}

export async function readToken(gateway: TestGateway, key: string, id: string, tx?: string): Promise<any> {
  return data(await gateway.gql(READ_TOKEN, { id, tx }, key), 'token');
}

export async function deleteToken(gateway: TestGateway, key: string, id: string, tx?: string): Promise<any> {
  return data(await gateway.gql(DELETE_TOKEN, { id, tx }, key), 'deleteToken');
}

export async function updateToken(
  gateway: TestGateway,
  key: string,
  id: string,
  input: Record<string, unknown>,
  tx?: string,
): Promise<any> {
  return data(await gateway.gql(UPDATE_TOKEN, { id, input, tx }, key), 'updateToken');
}

/** The token permissions together, which no default application holds (`token:update`), and `react`. */
export const ALL_TOKEN_PERMISSIONS = [
  'token:create',
  'token:read',
  'token:update',
  'token:delete',
  'token:use',
  'reactor:invoke',
];

export async function createTransaction(gateway: TestGateway, key: string): Promise<any> {
  return data(await gateway.gql(CREATE_TRANSACTION, {}, key), 'createTransaction');
}

export async function commit(gateway: TestGateway, key: string, id: string): Promise<any> {
  return data(await gateway.gql(COMMIT_TRANSACTION, { id }, key), 'commitTransaction');
}

export async function rollback(gateway: TestGateway, key: string, id: string): Promise<any> {
  return data(await gateway.gql(ROLLBACK_TRANSACTION, { id }, key), 'rollbackTransaction');
}

/** A new application of the tenant with exactly these permissions (and token containers, if given); returns its key. */
export async function applicationKey(
  gateway: TestGateway,
  tenant: TestTenant,
  type: 'PRIVATE' | 'PUBLIC',
  permissions: string[],
  tokenContainers?: string[],
): Promise<string> {
  const result = await gateway.gql(
    `mutation($input: CreateApplicationInput!) { createApplication(input: $input) {
      __typename ... on CreateApplicationPayload { key } } }`,
    { input: { name: `${type} ${permissions.join(' ')}`, type, permissions, tokenContainers } },
    tenant.managementKey,
  );
  const key = data(result, 'createApplication')?.key;
  if (!key) throw new Error(`createApplication failed: ${JSON.stringify(result)}`);
  return key;
}

/** A new tenant and a key of it that may create, read, update, delete and detokenize its tokens. */
export async function tenantWithTokenKey(gateway: TestGateway): Promise<{ tenant: TestTenant; key: string }> {
  const tenant = await gateway.createTenant();
  return { tenant, key: await applicationKey(gateway, tenant, 'PRIVATE', ALL_TOKEN_PERMISSIONS) };
}

/** Grants the tenant's own private application `token:update` too (no default application holds it). */
export function allowTokenUpdates(gateway: TestGateway, tenant: TestTenant): Promise<void> {
  return grantPrivateKey(gateway, tenant, ['token:update']);
}

/**
 * Grants the tenant's own private application these permissions on top of its defaults: `reactor:read` (reactors,
 * formulas, `reactorEvents`) or `token:update`, which a PRIVATE application holds only when they are named.
 */
export async function grantPrivateKey(gateway: TestGateway, tenant: TestTenant, extra: string[]): Promise<void> {
  const viewer = await gateway.gql<any>('{ viewer { application { id } } }', {}, tenant.privateKey);
  const granted = await gateway.gql<any>(
    'mutation($id: UUID!, $input: UpdateApplicationInput!) { updateApplication(id: $id, input: $input) { __typename } }',
    {
      id: viewer.data?.viewer.application.id,
      input: { name: 'Private', permissions: [...DEFAULT_PERMISSIONS.PRIVATE, ...extra] },
    },
    tenant.managementKey,
  );
  if (granted.data?.updateApplication.__typename !== 'Application') {
    throw new Error(`updateApplication failed: ${JSON.stringify(granted)}`);
  }
}

export async function principalFor(gateway: TestGateway, key: string): Promise<Principal> {
  const principal = await gateway.app.services.auth.authenticate(key);
  if (!principal) throw new Error('unknown key');
  return principal;
}

/** Moves a token's or transaction's expiry into the past, as if its time had come. */
export async function expireNow(gateway: TestGateway, table: 'tokens' | 'transactions', id: string): Promise<void> {
  await gateway.app.database.db
    .updateTable(table)
    .set({ expires_at: new Date(Date.now() - 1_000) })
    .where('id', '=', id)
    .execute();
}
