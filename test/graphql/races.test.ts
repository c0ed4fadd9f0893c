import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFormula, createReactor, createToken, REACT, REACT_ASYNC } from '../support/fixtures.ts';
import { type GraphQLResponse, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { allowTokenUpdates } from '../tokens/support.ts';

/**
 * Clients race each other on the same objects: one deletes a reactor and then its formula while another patches
 * it, lists it or runs it; one commits a transaction while another creates or updates a token in it; one deletes an
 * application a reactor is being attached to, or that another updates. On Postgres these really interleave (a pool of connections). Every
 * answer must be a result or a typed error, never "Unexpected error.": a write that loses the race learns that its
 * object is gone (NOT_FOUND), as it would have a moment later, and a read does not see it (test/reactors/
 * reactor-queries.test.ts makes that interleaving for `reactor` and `reactors` on purpose).
 */

const ROUNDS = 30;
const CODE = 'module.exports = async (req) => ({ raw: { n: req.args.n ?? null }, tokenize: { t: "secret" } });';
const TYPED = '__typename ... on Error { code }';

let gateway: TestGateway;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Races');
  // The private key may update tokens too (no default application may), to race updateToken as well.
  await allowTokenUpdates(gateway, tenant);
});
afterAll(async () => {
  await gateway?.close();
});

/** Fresh objects for one round, and every operation of the round on them. */
async function round(): Promise<(() => Promise<GraphQLResponse>)[]> {
  const management = tenant.managementKey;
  const client = tenant.privateKey;
  const gql = (query: string, variables: Record<string, unknown>, key: string) => () =>
    gateway.gql(query, variables, key);
  const formulaId = await createFormula(gateway, management, {
    code: CODE,
    configuration: [{ name: 'c', type: 'STRING' }],
  });
  const id = await createReactor(gateway, management, { formulaId, configuration: { c: 'x' } });
  const tokenId = await createToken(gateway, client, { type: 'TOKEN', data: 'abc' });
  const tx = (await gateway.gql<any>('mutation { createTransaction { id } }', {}, client)).data.createTransaction.id;
  const applicationId = (
    await gateway.gql<any>(
      'mutation { createApplication(input: { name: "a", type: PRIVATE }) { ... on CreateApplicationPayload { application { id } } } }',
      {},
      management,
    )
  ).data.createApplication.application.id;
  const formulaInput = { name: 'f', type: 'PRIVATE', code: CODE, configuration: [], requestParameters: [] };
  return [
    gql(REACT, { id, args: { n: `{{ ${tokenId} }}` }, tx }, client),
    gql(REACT, { id, args: { n: 1 } }, client),
    gql(REACT_ASYNC, { id, args: { n: 2 } }, client),
    gql(
      `mutation($id: UUID!) { deleteReactor(id: $id) { ${TYPED} ... on Reactor { formula { id } } } }`,
      { id },
      management,
    ),
    gql(`mutation($id: UUID!) { deleteReactorFormula(id: $id) { ${TYPED} } }`, { id: formulaId }, management),
    gql(
      `mutation($input: CreateReactorInput!) { createReactor(input: $input) { ${TYPED} ... on Reactor { formula { id } application { id } } } }`,
      { input: { name: 'r', formulaId, configuration: { c: 'y' }, applicationId } },
      management,
    ),
    gql(
      `mutation($id: UUID!, $input: PatchReactorInput!) { patchReactor(id: $id, input: $input) { ${TYPED} } }`,
      { id, input: { configuration: { c: 'p' }, applicationId } },
      management,
    ),
    gql(
      `mutation($id: UUID!, $input: UpdateReactorInput!) { updateReactor(id: $id, input: $input) { ${TYPED} } }`,
      { id, input: { name: 'u', configuration: { c: 'u' } } },
      management,
    ),
    gql(
      `mutation($id: UUID!, $input: UpdateReactorFormulaInput!) { updateReactorFormula(id: $id, input: $input) { ${TYPED} } }`,
      { id: formulaId, input: formulaInput },
      management,
    ),
    gql(`mutation($id: UUID!) { deleteApplication(id: $id) { ${TYPED} } }`, { id: applicationId }, management),
    gql(
      `mutation($id: UUID!, $input: UpdateApplicationInput!) { updateApplication(id: $id, input: $input) { ${TYPED} } }`,
      { id: applicationId, input: { name: 'b', permissions: ['token:read'] } },
      management,
    ),
    gql(`mutation($id: UUID!) { regenerateApplicationKey(id: $id) { ${TYPED} } }`, { id: applicationId }, management),
    gql(
      `mutation($id: UUID!, $tx: UUID) { updateToken(id: $id, input: { data: "in tx" }, transactionId: $tx) { ${TYPED} } }`,
      { id: tokenId, tx },
      client,
    ),
    gql(
      `mutation($id: UUID!) { updateToken(id: $id, input: { data: "plain" }) { ${TYPED} } }`,
      { id: tokenId },
      client,
    ),
    gql(`mutation($id: UUID!) { commitTransaction(id: $id) { ${TYPED} } }`, { id: tx }, client),
    gql(`mutation($id: UUID!) { rollbackTransaction(id: $id) { ${TYPED} } }`, { id: tx }, client),
    gql(
      `mutation($input: CreateTokenInput!, $tx: UUID) { createToken(input: $input, transactionId: $tx) { ${TYPED} } }`,
      { input: { type: 'TOKEN', data: 'q' }, tx },
      client,
    ),
    gql(`mutation($id: UUID!) { deleteToken(id: $id) { ${TYPED} } }`, { id: tokenId }, client),
    gql('query($id: UUID!) { token(id: $id) { id data } }', { id: tokenId }, client),
    gql('query($id: UUID!) { reactor(id: $id) { id formula { id } application { id } } }', { id }, management),
    gql('{ reactors(first: 50) { totalCount edges { node { id formula { id name } } } } }', {}, management),
  ];
}

describe('concurrent operations on the same objects', () => {
  it('answer with results or typed errors, whatever the interleaving', async () => {
    const orders = fc.sample(fc.infiniteStream(fc.integer()), { numRuns: ROUNDS, seed: 20261206 });
    const failures: unknown[] = [];
    for (const order of orders) {
      const operations = await round();
      // Each operation twice, in a seeded shuffle, all in flight at once.
      const keys = order.take(operations.length * 2);
      const shuffled = [...operations, ...operations]
        .map((operation) => ({ operation, key: keys.next().value as number }))
        .sort((a, b) => a.key - b.key);
      const answers = await Promise.all(shuffled.map(({ operation }) => operation()));
      for (const answer of answers) {
        const masked = answer.errors?.filter((error) => error.extensions?.code === 'INTERNAL_SERVER_ERROR') ?? [];
        if (masked.length > 0 || answer.data === undefined) failures.push(answer);
      }
    }
    expect(failures).toEqual([]);
  });
});
