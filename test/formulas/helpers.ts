import type { TestGateway } from '../support/gateway.ts';

/** The seed's example formula (seeds/003), as GraphQL input. */
export const SEED_ICON =
  'data:image/png;base64, iVBORw0KGgoAAAANSUhEUgAAAAUAAAAFCAYAAACNbyblAAAAHElEQVQI12P4//8/w38GIAXDIBKE0DHxgljNBAAO9TXL0Y4OHwAAAABJRU5ErkJggg==';

export const SEED_CODE = `
module.exports = async function (req) {
// Do something with \`req.configuration.SERVICE_API_KEY\`
return {
raw: {
foo: 'bar'
}
};
};
`;

export function formulaInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'My Private Reactor',
    description: 'Securely exchange token for another token',
    type: 'PRIVATE',
    icon: SEED_ICON,
    code: SEED_CODE,
    configuration: [{ name: 'SERVICE_API_KEY', description: 'Configuration description', type: 'STRING' }],
    requestParameters: [
      { name: 'request_parameter_1', description: 'Request parameter description', type: 'STRING' },
      { name: 'request_parameter_2', description: 'Request parameter description', type: 'BOOLEAN', optional: true },
    ],
    ...overrides,
  };
}

// `code` and `status` are also fields of `Error`; in one selection of a result union they need aliases.
export const FORMULA_FIELDS = `id name description type formulaStatus: status icon formulaCode: code
  configuration { name description type }
  requestParameters { name description type optional }
  createdBy createdAt modifiedBy modifiedAt`;

export const ERROR_FIELDS = '... on Error { code status message detail errors }';

export const CREATE_FORMULA = `mutation($input: CreateReactorFormulaInput!) {
  createReactorFormula(input: $input) { __typename ... on ReactorFormula { ${FORMULA_FIELDS} } ${ERROR_FIELDS} } }`;

export const UPDATE_FORMULA = `mutation($id: UUID!, $input: UpdateReactorFormulaInput!) {
  updateReactorFormula(id: $id, input: $input) { __typename ... on ReactorFormula { ${FORMULA_FIELDS} } ${ERROR_FIELDS} } }`;

export const DELETE_FORMULA = `mutation($id: UUID!) {
  deleteReactorFormula(id: $id) { __typename ... on ReactorFormula { id } ${ERROR_FIELDS} } }`;

export const GET_FORMULA = `query($id: UUID!) { reactorFormula(id: $id) { ${FORMULA_FIELDS} } }`;

/** Creates a formula and returns it; fails the test if the gateway refused it. */
export async function createFormula(
  gateway: TestGateway,
  key: string,
  overrides: Record<string, unknown> = {},
): Promise<Record<string, any>> {
  const result = await gateway.gql(CREATE_FORMULA, { input: formulaInput(overrides) }, key);
  const formula = result.data?.createReactorFormula;
  if (formula?.__typename !== 'ReactorFormula')
    throw new Error(`createReactorFormula failed: ${JSON.stringify(result)}`);
  return formula;
}

/** The id of the application a key belongs to. */
export async function applicationIdOf(gateway: TestGateway, key: string): Promise<string> {
  const result = await gateway.gql('{ viewer { application { id } } }', {}, key);
  return result.data?.viewer.application.id;
}

/** A new application of the tenant of `managementKey`, with its key. */
export async function createApplication(
  gateway: TestGateway,
  managementKey: string,
  type: 'PUBLIC' | 'PRIVATE' | 'MANAGEMENT',
  permissions?: string[],
): Promise<{ id: string; key: string }> {
  const result = await gateway.gql(
    `mutation($input: CreateApplicationInput!) { createApplication(input: $input) {
      __typename ... on CreateApplicationPayload { key application { id } } } }`,
    { input: { name: `${type} app`, type, ...(permissions ? { permissions } : {}) } },
    managementKey,
  );
  const payload = result.data?.createApplication;
  if (!payload?.key) throw new Error(`createApplication failed: ${JSON.stringify(result)}`);
  return { id: payload.application.id, key: payload.key };
}

export const UNKNOWN_ID = '01a204cc-a83d-77b0-9658-e28eab878300';
