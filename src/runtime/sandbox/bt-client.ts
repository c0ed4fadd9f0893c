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
  errors?: { message?: string; path?: unknown; extensions?: { code?: string; status?: number } }[];
}

/**
 * A variable that does not fit the operation's types (`Variable "$input" got invalid value "x" at "input.type";
 * Value "x" does not exist in "TokenType" enum.`) as the formula's mistake in its own words: the field and what is
 * wrong with it, never GraphQL's type names or the value itself (which may be the token data).
 */
function inputError(operation: string, message: string): BtCallError | null {
  const variable = /^Variable "\$(\w+)"/.exec(message)?.[1];
  if (!variable) return null;
  const at = /got invalid value .* at "([\w.[\]]+)"/.exec(message)?.[1];
  let field = at ? at.replace(/^input\./, '') : variable;
  let problem = 'is not valid';
  const missing = /; Field "(\w+)" of required type .* was not provided/.exec(message)?.[1];
  const unknown = /; Field "(\w+)" is not defined by type/.exec(message)?.[1];
  if (missing || unknown) {
    field = `${at ? `${field}.` : ''}${missing ?? unknown}`;
    problem = missing ? 'is required' : 'is not a known field';
  } else if (/must not be null|was not provided/.test(message)) problem = 'is required';
  return new BtCallError(`${operation} refused its input: ${field} ${problem}`, 'BAD_REQUEST', 400, {
    [field]: [problem],
  });
}

async function post(
  bt: { endpoint: string; apiKey: string },
  operation: string,
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
  if (first && first.path === undefined) {
    const refused = inputError(operation, String(first.message ?? ''));
    if (refused) throw refused;
  }
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

/** Formulas write token types as their `tokenize` blocks do, in lower case; the GraphQL enum is upper case. */
function withEnumType(input: unknown): unknown {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return input;
  const { type } = input as { type?: unknown };
  return typeof type === 'string' ? { ...input, type: type.toUpperCase() } : input;
}

export async function btCall(
  bt: { endpoint: string; apiKey: string },
  op: string,
  payload: { input?: unknown; id?: unknown },
  signal: AbortSignal,
): Promise<unknown> {
  const operation = `req.${op}`;
  switch (op) {
    case 'bt.tokens.create': {
      const data = await post(bt, operation, CREATE_TOKEN, { input: withEnumType(payload.input) }, signal);
      return resultOrThrow(data.createToken, 'createToken');
    }
    case 'bt.tokens.retrieve': {
      const data = await post(bt, operation, RETRIEVE_TOKEN, { id: payload.id }, signal);
      if (!data.token) throw new BtCallError('Token not found', 'NOT_FOUND', 404);
      return data.token;
    }
    case 'bt.tokens.update': {
      const data = await post(bt, operation, UPDATE_TOKEN, { id: payload.id, input: payload.input }, signal);
      return resultOrThrow(data.updateToken, 'updateToken');
    }
    case 'bt.tokens.delete':
      // The SDK's delete resolves to nothing.
      resultOrThrow((await post(bt, operation, DELETE_TOKEN, { id: payload.id }, signal)).deleteToken, 'deleteToken');
      return null;
    case 'bt.tokenize': {
      const data = await post(bt, operation, TOKENIZE, { request: payload.input }, signal);
      return resultOrThrow(data.tokenize, 'tokenize').tokens ?? null;
    }
    default:
      throw new BtCallError(`Unknown bt operation ${op}`);
  }
}
