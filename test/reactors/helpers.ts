import { createFormula, ERROR_FIELDS } from '../formulas/helpers.ts';
import type { TestGateway } from '../support/gateway.ts';

export const REACTOR_FIELDS = `id tenantId name configuration createdBy createdAt modifiedBy modifiedAt
  formula { id name } application { id type }`;

export const CREATE_REACTOR = `mutation($input: CreateReactorInput!) {
  createReactor(input: $input) { __typename ... on Reactor { ${REACTOR_FIELDS} } ${ERROR_FIELDS} } }`;
export const UPDATE_REACTOR = `mutation($id: UUID!, $input: UpdateReactorInput!) {
  updateReactor(id: $id, input: $input) { __typename ... on Reactor { ${REACTOR_FIELDS} } ${ERROR_FIELDS} } }`;
export const PATCH_REACTOR = `mutation($id: UUID!, $input: PatchReactorInput!) {
  patchReactor(id: $id, input: $input) { __typename ... on Reactor { ${REACTOR_FIELDS} } ${ERROR_FIELDS} } }`;
export const DELETE_REACTOR = `mutation($id: UUID!) {
  deleteReactor(id: $id) { __typename ... on Reactor { id } ${ERROR_FIELDS} } }`;
export const GET_REACTOR = `query($id: UUID!) { reactor(id: $id) { ${REACTOR_FIELDS} } }`;

/** A formula with one option of each type, so configuration casting shows. */
export async function createConfiguredFormula(gateway: TestGateway, key: string): Promise<Record<string, any>> {
  return createFormula(gateway, key, {
    configuration: [
      { name: 'API_KEY', type: 'STRING' },
      { name: 'LIMIT', type: 'NUMBER' },
      { name: 'LIVE', type: 'BOOLEAN' },
    ],
  });
}

export async function createReactor(
  gateway: TestGateway,
  key: string,
  input: Record<string, unknown>,
): Promise<Record<string, any>> {
  const result = await gateway.gql(CREATE_REACTOR, { input }, key);
  const reactor = result.data?.createReactor;
  if (reactor?.__typename !== 'Reactor') throw new Error(`createReactor failed: ${JSON.stringify(result)}`);
  return reactor;
}
