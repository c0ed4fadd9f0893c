import { BENCH_KEYS, gql } from './gateway.ts';
import type { InProcessGateway } from './in-process.ts';

/** Where seeding sends its GraphQL: a running gateway's URL, or the gateway's code in this process. */
export type GraphQLTarget = string | InProcessGateway;

function send<T = Record<string, any>>(
  target: GraphQLTarget,
  query: string,
  variables: Record<string, unknown>,
  key: string,
): Promise<T> {
  return typeof target === 'string' ? gql<T>(target, query, variables, key) : target.graphql<T>(query, variables, key);
}

/** Does the running gateway's schema have this root field? Figures for features still being built check first. */
export async function hasRootField(url: string, type: 'Query' | 'Mutation' | 'Subscription', field: string) {
  const data = await gql<{ __type: { fields: { name: string }[] } | null }>(
    url,
    'query ($type: String!) { __type(name: $type) { fields { name } } }',
    { type },
  );
  return data.__type?.fields.some((f) => f.name === field) ?? false;
}

/** A private formula that returns at once, and a reactor of it: measures the gateway, not the formula. */
export const TRIVIAL_FORMULA = 'module.exports = async function (req) { return { raw: { ok: true } }; };';

/** `react` as the benchmarks send it: the response's raw output, or the error. */
export const REACT_MUTATION = `mutation ($id: UUID!, $args: JSON) { react(id: $id, args: $args) {
  __typename ... on ReactorResponse { raw } ... on Error { code message } } }`;

/** A token of the private key's tenant, and the `react` args that detokenize it once (issue 7's figure). */
export async function createBenchToken(
  url: string,
  secret: string,
): Promise<{ id: string; args: { n: number; secret: string } }> {
  const data = await gql<{ createToken: { __typename: string; id?: string } }>(
    url,
    'mutation ($input: CreateTokenInput!) { createToken(input: $input) { __typename ... on Token { id } } }',
    { input: { type: 'TOKEN', data: { secret } } },
    BENCH_KEYS.private,
  );
  const id = data.createToken.id;
  if (!id) throw new Error(`createToken answered ${JSON.stringify(data)}`);
  return { id, args: { n: 1, secret: `{{ ${id} }}` } };
}

export async function createReactorOfCode(
  target: GraphQLTarget,
  code: string,
  key = BENCH_KEYS.management,
): Promise<string> {
  const formula = await send<any>(
    target,
    `mutation($input: CreateReactorFormulaInput!) { createReactorFormula(input: $input) {
      __typename ... on ReactorFormula { id } ... on Error { message } } }`,
    { input: { name: 'Bench formula', type: 'PRIVATE', code } },
    key,
  );
  if (formula.createReactorFormula.__typename !== 'ReactorFormula') {
    throw new Error(`createReactorFormula: ${JSON.stringify(formula)}`);
  }
  const reactor = await send<any>(
    target,
    `mutation($input: CreateReactorInput!) { createReactor(input: $input) {
      __typename ... on Reactor { id } ... on Error { message } } }`,
    { input: { name: 'Bench reactor', formulaId: formula.createReactorFormula.id } },
    key,
  );
  if (reactor.createReactor.__typename !== 'Reactor') throw new Error(`createReactor: ${JSON.stringify(reactor)}`);
  return reactor.createReactor.id;
}

export interface BenchTenant {
  tenantId: string;
  managementKey: string;
  privateKey: string;
}

export async function createTenant(target: GraphQLTarget, name: string): Promise<BenchTenant> {
  const data = await send<any>(
    target,
    `mutation($name: String!) { createTenant(input: { name: $name }) {
      __typename ... on CreateTenantPayload { tenant { id } managementKey privateKey } } }`,
    { name },
    BENCH_KEYS.admin,
  );
  const payload = data.createTenant;
  if (!payload?.tenant) throw new Error(`createTenant: ${JSON.stringify(data)}`);
  return { tenantId: payload.tenant.id, managementKey: payload.managementKey, privateKey: payload.privateKey };
}
