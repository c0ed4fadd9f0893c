/**
 * One GraphQL POST with an API key through `send` (the network's `fetch`, or Yoga's own in-process), failing loudly
 * on errors: what seeding and checks need, whichever way they reach the gateway.
 */
export async function graphQLRequest<T>(
  send: (init: RequestInit) => Response | Promise<Response>,
  query: string,
  variables: Record<string, unknown>,
  key: string,
): Promise<T> {
  const response = await send({
    method: 'POST',
    headers: { 'content-type': 'application/json', 'bt-api-key': key },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length || !body.data) throw new Error(`${query.slice(0, 60)}: ${JSON.stringify(body.errors)}`);
  return body.data;
}
