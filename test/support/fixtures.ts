import type { TestGateway } from './gateway.ts';

/** Helpers that build the objects a test needs through the public API, failing loudly when they cannot. */

export async function createFormula(
  gateway: TestGateway,
  key: string,
  input: {
    code: string;
    name?: string;
    configuration?: { name: string; type: string; description?: string }[];
    requestParameters?: { name: string; type: string; optional?: boolean; description?: string }[];
  },
): Promise<string> {
  const result = await gateway.gql<any>(
    `mutation($input: CreateReactorFormulaInput!) { createReactorFormula(input: $input) {
      __typename ... on ReactorFormula { id } ... on Error { message errors } } }`,
    {
      input: {
        name: input.name ?? 'Test formula',
        type: 'PRIVATE',
        code: input.code,
        configuration: input.configuration ?? [],
        requestParameters: input.requestParameters ?? [],
      },
    },
    key,
  );
  const formula = result.data?.createReactorFormula;
  if (formula?.__typename !== 'ReactorFormula')
    throw new Error(`createReactorFormula failed: ${JSON.stringify(result)}`);
  return formula.id;
}

export async function createReactor(
  gateway: TestGateway,
  key: string,
  input: { formulaId: string; name?: string; configuration?: Record<string, unknown>; applicationId?: string },
): Promise<string> {
  const result = await gateway.gql<any>(
    `mutation($input: CreateReactorInput!) { createReactor(input: $input) {
      __typename ... on Reactor { id } ... on Error { message errors } } }`,
    { input: { name: input.name ?? 'Test reactor', configuration: {}, ...input } },
    key,
  );
  const reactor = result.data?.createReactor;
  if (reactor?.__typename !== 'Reactor') throw new Error(`createReactor failed: ${JSON.stringify(result)}`);
  return reactor.id;
}

/** A formula from code and a reactor of it, in one step. */
export async function createReactorWithCode(
  gateway: TestGateway,
  managementKey: string,
  code: string,
  options: {
    requestParameters?: { name: string; type: string; optional?: boolean }[];
    configuration?: { name: string; type: string }[];
    values?: Record<string, unknown>;
    applicationId?: string;
  } = {},
): Promise<string> {
  const formulaId = await createFormula(gateway, managementKey, {
    code,
    requestParameters: options.requestParameters,
    configuration: options.configuration,
  });
  return createReactor(gateway, managementKey, {
    formulaId,
    configuration: options.values ?? {},
    applicationId: options.applicationId,
  });
}

export async function createToken(
  gateway: TestGateway,
  key: string,
  input: { type: string; data: unknown; metadata?: Record<string, unknown> },
  transactionId?: string,
): Promise<string> {
  const result = await gateway.gql<any>(
    `mutation($input: CreateTokenInput!, $tx: UUID) { createToken(input: $input, transactionId: $tx) {
      __typename ... on Token { id } ... on Error { message errors } } }`,
    { input, tx: transactionId ?? null },
    key,
  );
  const token = result.data?.createToken;
  if (token?.__typename !== 'Token') throw new Error(`createToken failed: ${JSON.stringify(result)}`);
  return token.id;
}

export const REACT = `mutation($id: UUID!, $args: JSON, $tx: UUID) { react(id: $id, args: $args, transactionId: $tx) {
  __typename
  ... on ReactorResponse { raw tokens logs { level message } }
  ... on Error { code status message detail errors } } }`;

export const REACT_ASYNC = `mutation($id: UUID!, $args: JSON, $timeoutMs: Int, $callbackUrl: String) {
  reactAsync(id: $id, args: $args, timeoutMs: $timeoutMs, callbackUrl: $callbackUrl) {
    __typename ... on AsyncReactorRequest { asyncReactorRequestId } ... on Error { code status message errors } } }`;

export const REACTOR_RESULT = `query($reactorId: UUID!, $requestId: UUID!) { reactorResult(reactorId: $reactorId, requestId: $requestId) {
  id reactorId applicationId status raw tokens error { code status message detail errors } createdAt startedAt completedAt } }`;
