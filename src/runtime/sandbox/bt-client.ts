// req.bt calls: the worker talks GraphQL to our own gateway with the reactor's application key, which never
// enters the isolate. The endpoint is operator-configured, so it is exempt from the egress policy.

const TOKEN_FIELDS = 'id type fingerprint mask metadata containers createdAt expiresAt';
const CREATE_TOKEN = `mutation ReactorCreateToken($input: CreateTokenInput!) {
  createToken(input: $input) { __typename ... on Token { ${TOKEN_FIELDS} } ... on Error { code status message errors } }
}`;
const RETRIEVE_TOKEN = `query ReactorRetrieveToken($id: UUID!) { token(id: $id) { id type data ${TOKEN_FIELDS.slice(8)} } }`;

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

export async function btCall(
  bt: { endpoint: string; apiKey: string },
  op: string,
  payload: { input?: unknown; id?: unknown },
  signal: AbortSignal,
): Promise<unknown> {
  if (op === 'bt.tokens.create') {
    const data = await post(bt, CREATE_TOKEN, { input: payload.input }, signal);
    const result = data.createToken as Record<string, unknown> | null;
    if (!result) throw new BtCallError('createToken returned nothing');
    if (result.__typename === 'Token' || !('code' in result)) {
      const { __typename: _, ...token } = result;
      return token;
    }
    throw new BtCallError(
      String(result.message ?? 'createToken failed'),
      String(result.code),
      Number(result.status) || null,
      result.errors ?? null,
    );
  }
  if (op === 'bt.tokens.retrieve') {
    const data = await post(bt, RETRIEVE_TOKEN, { id: payload.id }, signal);
    if (!data.token) throw new BtCallError('Token not found', 'NOT_FOUND', 404);
    return data.token;
  }
  throw new BtCallError(`Unknown bt operation ${op}`);
}
