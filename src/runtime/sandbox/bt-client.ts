// req.bt calls: the worker talks GraphQL to our own gateway with the reactor's application key, which never
// enters the isolate. The endpoint is operator-configured, so it is exempt from the egress policy.

const TOKEN_FIELDS = 'id type fingerprint mask metadata containers createdAt expiresAt modifiedAt';
const CREATE_TOKEN = `mutation ReactorCreateToken($input: CreateTokenInput!) {
  createToken(input: $input) { __typename ... on Token { ${TOKEN_FIELDS} } ... on Error { code status message errors } }
}`;
const RETRIEVE_TOKEN = `query ReactorRetrieveToken($id: UUID!) { token(id: $id) { id type data ${TOKEN_FIELDS.slice(8)} } }`;
const UPDATE_TOKEN = `mutation ReactorUpdateToken($id: UUID!, $input: UpdateTokenInput!) {
  updateToken(id: $id, input: $input) { __typename ... on Token { ${TOKEN_FIELDS} } ... on Error { code status message errors } }
}`;
const DELETE_TOKEN = `mutation ReactorDeleteToken($id: UUID!) {
  deleteToken(id: $id) { __typename ... on Token { id } ... on Error { code status message errors } }
}`;
const TOKENIZE = `mutation ReactorTokenize($request: JSON!) {
  tokenize(request: $request) { __typename ... on TokenizePayload { tokens } ... on Error { code status message errors } }
}`;

export class BtCallError extends Error {
  constructor(
    message: string,
    readonly code: string | null = null,
    readonly status: number | null = null,
    readonly errors: unknown = null,
  ) {
    super(message);
  }
}

interface GraphQLAnswer {
  data?: Record<string, unknown> | null;
  errors?: { message?: string; extensions?: { code?: string; status?: number } }[];
}

async function post(
  bt: { endpoint: string; apiKey: string },
  query: string,
  variables: Record<string, unknown>,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  const response = await fetch(bt.endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bt.apiKey}` },
    body: JSON.stringify({ query, variables }),
    signal,
  });
  let answer: GraphQLAnswer;
  try {
    answer = (await response.json()) as GraphQLAnswer;
  } catch {
    throw new BtCallError(`Basis Theory call failed with HTTP ${response.status}`, null, response.status);
  }
  const first = answer.errors?.[0];
  if (first)
    throw new BtCallError(
      String(first.message ?? 'Basis Theory call failed'),
      first.extensions?.code ?? null,
      first.extensions?.status ?? null,
    );
  if (!answer.data)
    throw new BtCallError(`Basis Theory call failed with HTTP ${response.status}`, null, response.status);
  return answer.data;
}

/** A mutation's union result: the token (or payload), or its typed error thrown as the SDK's error would carry it. */
function resultOrThrow(result: unknown, operation: string): Record<string, unknown> {
  if (!result || typeof result !== 'object') throw new BtCallError(`${operation} returned nothing`);
  const answer = result as Record<string, unknown>;
  if (answer.__typename === 'Token' || !('code' in answer)) {
    const { __typename: _, ...token } = answer;
    return token;
  }
  throw new BtCallError(
    String(answer.message ?? `${operation} failed`),
    String(answer.code),
    Number(answer.status) || null,
    answer.errors ?? null,
  );
}

export async function btCall(
  bt: { endpoint: string; apiKey: string },
  op: string,
  payload: { input?: unknown; id?: unknown },
  signal: AbortSignal,
): Promise<unknown> {
  switch (op) {
    case 'bt.tokens.create':
      return resultOrThrow((await post(bt, CREATE_TOKEN, { input: payload.input }, signal)).createToken, 'createToken');
    case 'bt.tokens.retrieve': {
      const data = await post(bt, RETRIEVE_TOKEN, { id: payload.id }, signal);
      if (!data.token) throw new BtCallError('Token not found', 'NOT_FOUND', 404);
      return data.token;
    }
    case 'bt.tokens.update': {
      const data = await post(bt, UPDATE_TOKEN, { id: payload.id, input: payload.input }, signal);
      return resultOrThrow(data.updateToken, 'updateToken');
    }
    case 'bt.tokens.delete':
      // The SDK's delete resolves to nothing.
      resultOrThrow((await post(bt, DELETE_TOKEN, { id: payload.id }, signal)).deleteToken, 'deleteToken');
      return null;
    case 'bt.tokenize': {
      const data = await post(bt, TOKENIZE, { request: payload.input }, signal);
      return resultOrThrow(data.tokenize, 'tokenize').tokens ?? null;
    }
    default:
      throw new BtCallError(`Unknown bt operation ${op}`);
  }
}
