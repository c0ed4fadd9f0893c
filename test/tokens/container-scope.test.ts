import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, createToken, REACT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';

// Seeds: "The token:use permission ... is required for each Container of Tokens you wish to detokenize in a Reactor."
let gateway: TestGateway;
let tenant: TestTenant;
let reactorId: string;
const tokens: Record<'pci' | 'general' | 'both' | 'lookalike', string> = {} as never;

const CREATE_APPLICATION = `mutation($input: CreateApplicationInput!) { createApplication(input: $input) {
  __typename ... on CreateApplicationPayload { key application { id tokenContainers } }
  ... on Error { code status errors } } }`;

async function application(tokenContainers?: string[] | null) {
  const result = await gateway.gql<any>(
    CREATE_APPLICATION,
    { input: { name: 'Scoped', type: 'PRIVATE', tokenContainers } },
    tenant.managementKey,
  );
  return result.data!.createApplication;
}

async function reactWith(key: string, token: string) {
  const result = await gateway.gql<any>(REACT, { id: reactorId, args: { value: `{{ ${token} }}` } }, key);
  return result;
}

beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant('Containers');
  reactorId = await createReactorWithCode(
    gateway,
    tenant.managementKey,
    'module.exports = async (req) => ({ raw: req.args });',
  );
  const token = (containers: string[], secret: string) =>
    createToken(gateway, tenant.privateKey, { type: 'TOKEN', data: secret, containers } as never);
  tokens.pci = await token(['/pci/high/'], 'pci secret');
  tokens.general = await token(['/general/high/'], 'general secret');
  tokens.both = await token(['/general/low/', '/pci/low/'], 'both secret');
  tokens.lookalike = await token(['/pcix/high/'], 'lookalike secret');
});
afterAll(async () => {
  await gateway?.close();
});

describe('token:use scoped to containers', () => {
  it('detokenizes tokens in or below the application token containers', async () => {
    const scoped = await application(['/pci/']);
    expect(scoped.application.tokenContainers).toEqual(['/pci/']);
    expect((await reactWith(scoped.key, tokens.pci)).data.react.raw).toEqual({ value: 'pci secret' });
    // A token in several containers needs only one of them covered.
    expect((await reactWith(scoped.key, tokens.both)).data.react.raw).toEqual({ value: 'both secret' });
  });

  it('refuses a token in no covered container with FORBIDDEN (`/pci/` does not cover `/pcix/`)', async () => {
    const scoped = await application(['/pci/']);
    for (const [token, container] of [
      [tokens.general, '/general/high/'],
      [tokens.lookalike, '/pcix/high/'],
    ]) {
      const result = await reactWith(scoped.key, token!);
      expect(result.data.react).toEqual({
        __typename: 'ForbiddenError',
        code: 'FORBIDDEN',
        status: 403,
        message: `Detokenizing token "${token}" requires the token:use permission on one of its containers (${container}).`,
        detail: null,
        errors: null,
      });
    }
  });

  it('covers every container when the application has none (as before this setting existed)', async () => {
    const everywhere = await application();
    expect(everywhere.application.tokenContainers).toBeNull();
    for (const token of Object.values(tokens)) {
      expect((await reactWith(everywhere.key, token)).data.react.__typename).toBe('ReactorResponse');
    }
  });

  it('rejects container paths that are not paths, and an empty list, creating nothing', async () => {
    const count = async () =>
      (await gateway.gql<any>('{ applications { totalCount } }', {}, tenant.managementKey)).data.applications
        .totalCount;
    const before = await count();
    const invalid = await application(['pci', '/PCI/', '/pci/']);
    expect(invalid).toMatchObject({ code: 'BAD_REQUEST', status: 400 });
    expect(invalid.errors.tokenContainers).toEqual([
      '"pci" is not a container path like "/pci/" (lowercase segments)',
      '"/PCI/" is not a container path like "/pci/" (lowercase segments)',
    ]);
    expect((await application([])).errors.tokenContainers).toEqual([
      'must not be empty (omit it to cover every container)',
    ]);
    expect(await count()).toBe(before);
  });
});
