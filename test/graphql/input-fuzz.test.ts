import fc from 'fast-check';
import { parse, validate } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFormula, createReactor, createToken } from '../support/fixtures.ts';
import { fuzzSettings } from '../support/fuzz.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { argumentsArb, errorResults, operationFor, rootFields, schema, textVariants } from '../support/schema-fuzz.ts';
import { allowTokenUpdates } from '../tokens/support.ts';

/**
 * Every query and mutation of the committed schema, called with generated arguments that are well-typed GraphQL
 * but arbitrary in content (odd strings, NUL bytes, huge and negative numbers, deep JSON, `{{ }}` expressions, ids
 * of real and of missing objects) under every kind of key. Whatever the input, the gateway must answer with data or
 * a typed error: never an HTTP 5xx, never the masked "Unexpected error." of a crash, never an `Error` result whose
 * status says the server failed; and another tenant's key (or none) never sees the fuzzed tenant's data. Then
 * text no stored column can hold goes, one place at a time, into input the gateway accepted. The documents and
 * argument types come from schema.graphql (test/support/schema-fuzz.ts), so a new field is fuzzed without touching
 * this file.
 */

const { seed: SEED, runs: RUNS_PER_FIELD } = fuzzSettings(100);

let gateway: TestGateway;
let tenant: TestTenant;
let other: TestTenant;
const knownIds: string[] = [];
/** Ids only the fuzzed tenant's objects carry: its own and those of its two applications. */
const ownMarkers: string[] = [];

type Accepted = { vars: Record<string, unknown>; key: string | null };
/** Input each mutation accepts, written out: random input seldom gets a whole formula or token right. */
let examples: Record<string, Accepted[]> = {};

beforeAll(async () => {
  gateway = await startTestGateway({ env: { NODE_ENV: 'development' } });
  tenant = await gateway.createTenant('Fuzzed');
  other = await gateway.createTenant('Bystander');
  // A formula that cannot fail whatever its args, so an error status of 500 from `react` is the gateway's own.
  const formula = {
    name: 'Echo',
    description: 'Returns its args',
    type: 'PRIVATE',
    code: 'module.exports = async (req) => ({ raw: { echoed: req.args === undefined ? null : req.args } });',
    configuration: [{ name: 'label', description: 'A label', type: 'STRING' }],
    requestParameters: [{ name: 'note', description: 'A note', type: 'STRING', optional: true }],
  };
  const echo = async () => {
    const formulaId = await createFormula(gateway, tenant.managementKey, formula);
    const reactorId = await createReactor(gateway, tenant.managementKey, { formulaId, configuration: { label: 'x' } });
    return { formulaId, reactorId };
  };
  // The random calls may delete the objects of knownIds; the examples have their own, which nothing deletes.
  const target = await echo();
  for (const key of [tenant.managementKey, tenant.privateKey]) {
    const viewer = await gateway.gql<any>('{ viewer { application { id } } }', {}, key);
    ownMarkers.push(viewer.data.viewer.application.id);
  }
  ownMarkers.push(tenant.tenantId);
  // The private key may also update tokens (no default application may), so updateToken is reached too.
  await allowTokenUpdates(gateway, tenant);
  const tokenId = await createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: { secret: 'fuzz' } });
  const transaction = await gateway.gql<any>('mutation { createTransaction { id } }', {}, tenant.privateKey);
  knownIds.push(target.reactorId, tokenId, transaction.data.createTransaction.id, target.formulaId);
  const { formulaId, reactorId } = await echo();
  const targetApplication = await gateway.gql<any>(
    'mutation { createApplication(input: { name: "Fuzz target", type: PRIVATE }) { ... on CreateApplicationPayload { application { id } } } }',
    {},
    tenant.managementKey,
  );
  const applicationId = targetApplication.data.createApplication.application.id;

  const management = (vars: Record<string, unknown>) => [{ vars, key: tenant.managementKey }];
  const application = { name: 'App', type: 'PRIVATE', permissions: ['token:use'], tokenContainers: ['/general/'] };
  const reactor = { name: 'Reactor', formulaId, configuration: { label: 'y' } };
  const token = { type: 'TOKEN', data: { a: 'b' }, metadata: { note: 'n' }, containers: ['/general/high/'] };
  examples = {
    createTenant: [{ vars: { input: { name: 'Tenant' } }, key: ADMIN_KEY }],
    tenants: [{ vars: { first: 5 }, key: ADMIN_KEY }],
    deleteTenant: [{ vars: { id: (await gateway.createTenant('Leaving')).tenantId }, key: ADMIN_KEY }],
    createManagementKey: [{ vars: { tenantId: (await gateway.createTenant('Recovered')).tenantId }, key: ADMIN_KEY }],
    createApplication: management({ input: application }),
    updateApplication: management({ id: applicationId, input: { name: 'App', permissions: ['token:use'] } }),
    regenerateApplicationKey: management({ id: applicationId }),
    createReactorFormula: management({ input: formula }),
    updateReactorFormula: management({ id: formulaId, input: formula }),
    createReactor: management({ input: reactor }),
    updateReactor: management({ id: reactorId, input: { name: 'Reactor', configuration: { label: 'y' } } }),
    patchReactor: management({ id: reactorId, input: { name: 'Reactor', configuration: { label: 'z' } } }),
    createToken: [{ vars: { input: token }, key: tenant.privateKey }],
    updateToken: [
      {
        vars: {
          id: await createToken(gateway, tenant.privateKey, token),
          input: { data: { a: 'c' }, metadata: { n: 1 } },
        },
        key: tenant.privateKey,
      },
    ],
    tokenize: [
      {
        vars: { request: { name: 'n', card: { type: 'TOKEN', data: 'd', metadata: { m: 'x' } } } },
        key: tenant.privateKey,
      },
    ],
    tokens: [{ vars: { metadata: { note: 'n' }, container: '/general/' }, key: tenant.privateKey }],
    react: [{ vars: { id: reactorId, args: { note: 'n', k: ['v'] } }, key: tenant.privateKey }],
    reactAsync: [
      { vars: { id: reactorId, args: { note: 'n' }, callbackUrl: 'https://example.com/hook' }, key: tenant.privateKey },
    ],
    reactors: management({ name: 'React' }),
    reactorFormulas: management({ name: 'Echo' }),
  };
});

afterAll(async () => {
  await gateway?.close();
});

const cases = rootFields();
const OPERATOR_FIELDS = new Set(['createTenant', 'tenants', 'deleteTenant', 'createManagementKey']);

async function send(query: string, variables: Record<string, unknown>, key: string | null) {
  const response = await gateway.post(JSON.stringify({ query, variables }), key);
  return { status: response.status, body: (await response.json()) as { data?: unknown; errors?: any[] } };
}

describe('generated input for every query and mutation', () => {
  it('builds a valid document for each field', () => {
    expect(cases.length).toBeGreaterThanOrEqual(28);
    for (const { kind, field } of cases) expect(validate(schema, parse(operationFor(kind, field)))).toEqual([]);
  });

  it.each(cases.map(({ kind, field }) => [`${kind} ${field.name}`, kind, field] as const))(
    '%s never fails as the server',
    async (_name, kind, field) => {
      const query = operationFor(kind, field);
      // Mostly keys that reach the resolvers; sometimes the admin, another tenant's, an unknown one or none.
      // The operator's fields mostly get the admin key, which alone reaches their resolvers.
      const usual = OPERATOR_FIELDS.has(field.name)
        ? fc.constant<string>(ADMIN_KEY)
        : fc.constantFrom(tenant.managementKey, tenant.privateKey);
      const keys = fc.oneof(
        { weight: 4, arbitrary: usual },
        {
          weight: 1,
          arbitrary: fc.constantFrom<string | null>(
            ADMIN_KEY,
            other.managementKey,
            other.privateKey,
            null,
            'key_unknown',
          ),
        },
      );
      const variables = argumentsArb(field, knownIds);
      let executed = 0;
      const refusals = new Set<string>();
      const accepted: Accepted[] = [...(examples[field.name] ?? [])];
      const check = async (vars: Record<string, unknown>, key: string | null) => {
        const { status, body } = await send(query, vars, key);
        const failures = (body.errors ?? []).filter(
          (error) => error.extensions?.code === 'INTERNAL_SERVER_ERROR' || /unexpected error/i.test(error.message),
        );
        const serverErrors = errorResults(body.data).filter((error) => error.status >= 500);
        expect({ status: status < 500 ? 'below 500' : status, failures, serverErrors }, JSON.stringify(vars)).toEqual({
          status: 'below 500',
          failures: [],
          serverErrors: [],
        });
        // Another tenant's key, an unknown one or none never sees the fuzzed tenant's objects: each carries the
        // tenant's id or the id of the application that created it, and no request names either.
        if (key !== tenant.managementKey && key !== tenant.privateKey && key !== ADMIN_KEY) {
          const answer = JSON.stringify(body);
          for (const marker of ownMarkers) expect(answer, JSON.stringify(vars)).not.toContain(marker);
        }
        return body;
      };
      await fc.assert(
        fc.asyncProperty(variables, keys, async (vars, key) => {
          const body = await check(vars, key);
          if (body.data == null || body.errors?.length) {
            for (const error of body.errors ?? []) refusals.add(error.message);
            return;
          }
          executed++;
          // Accepted: a result, not an Error and not null (a lookup of an id that does not exist proves little).
          const result = (body.data as Record<string, unknown>)[field.name];
          if (result != null && errorResults(body.data).length === 0 && accepted.length < 4)
            accepted.push({ vars, key });
        }),
        { numRuns: RUNS_PER_FIELD, seed: SEED },
      );
      // The run proves something only if some calls got past input coercion and authentication into a resolver.
      expect(executed, [...refusals].slice(0, 5).join('\n')).toBeGreaterThan(0);

      // Random input rarely gets every other field right at once, so text that only a stored column refuses is
      // also put, one place at a time, into the examples and the input the gateway accepted above.
      for (const { vars, key } of accepted) {
        for (const variant of textVariants(vars, field.args)) await check(variant, key);
      }
      // Whatever the fuzzed tenant's key got accepted, the other tenant's key of the same kind sends too: it must
      // neither read nor change the fuzzed tenant's objects (check() looks for the tenant's id in every answer).
      const counterpart = new Map([
        [tenant.managementKey, other.managementKey],
        [tenant.privateKey, other.privateKey],
      ]);
      for (const { vars, key } of accepted) {
        const foreign = key === null ? undefined : counterpart.get(key);
        if (foreign) await check(vars, foreign);
      }
    },
  );
});
