import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, createToken, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import {
  ALL_TOKEN_PERMISSIONS,
  applicationKey,
  CREATE_TOKEN,
  card,
  DELETE_TOKEN,
  data,
  deleteToken,
  listAllTokens,
  READ_TOKEN,
  readToken,
} from './support.ts';

// Seeds: "The token:use permission ... is required for each Container of Tokens you wish to detokenize in a Reactor."
// The other token permissions are scoped the same way: an application reaches only the tokens its containers cover.
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

async function createTokenWith(key: string, input: Record<string, unknown>): Promise<any> {
  return data(await gateway.gql(CREATE_TOKEN, { input }, key), 'createToken');
}

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

describe('every token permission scoped to containers', () => {
  let scoped: string;
  beforeAll(async () => {
    scoped = await applicationKey(gateway, tenant, 'PRIVATE', ALL_TOKEN_PERMISSIONS, ['/pci/']);
  });
  const forbidden = (doing: string, id: string | null, containers: string) =>
    `${doing} ${id === null ? 'a token' : `token "${id}"`} requires one of its containers (${containers}) to lie in ` +
    "this application's token containers (/pci/).";

  it('reads and lists only covered tokens', async () => {
    expect((await readToken(gateway, scoped, tokens.pci)).data).toBe('pci secret');
    expect((await readToken(gateway, scoped, tokens.both)).data).toBe('both secret');
    for (const [id, containers] of [
      [tokens.general, '/general/high/'],
      [tokens.lookalike, '/pcix/high/'],
    ] as const) {
      const refused = await gateway.gql(READ_TOKEN, { id }, scoped);
      expect(refused.errors?.[0]).toMatchObject({
        message: forbidden('Reading', id, containers),
        extensions: { code: 'FORBIDDEN' },
      });
    }
    const listed = await listAllTokens(gateway, scoped);
    expect(listed.tokens.map((token) => token.id)).toEqual([tokens.pci, tokens.both]);
    expect(listed.totalCount).toBe(2);
    // The container filter narrows within the reach; it never widens it (`both` is in /general/ and in /pci/).
    const general = await listAllTokens(gateway, scoped, { container: '/general/' });
    expect(general.tokens.map((token) => token.id)).toEqual([tokens.both]);
    // Without token containers, the same tenant's list holds them all.
    const everywhere = await listAllTokens(gateway, tenant.privateKey);
    expect(everywhere.tokens.map((token) => token.id)).toEqual(expect.arrayContaining(Object.values(tokens)));
  });

  it('creates only covered tokens, and creates nothing when refused', async () => {
    const refused = await gateway.gql<any>(CREATE_TOKEN, { input: { type: 'TOKEN', data: 'x' } }, scoped);
    expect(refused.data?.createToken).toMatchObject({
      __typename: 'ForbiddenError',
      code: 'FORBIDDEN',
      message: forbidden('Creating', null, '/general/high/'),
    });
    const before = (await listAllTokens(gateway, tenant.privateKey)).totalCount;
    const created = await createTokenWith(scoped, { type: 'CARD', data: card() });
    expect(created.containers).toEqual(['/pci/high/']);
    expect((await listAllTokens(gateway, tenant.privateKey)).totalCount).toBe(before + 1);
    expect((await deleteToken(gateway, scoped, created.id)).__typename).toBe('Token');
  });

  it('deletes only covered tokens', async () => {
    const refused = await gateway.gql<any>(DELETE_TOKEN, { id: tokens.general }, scoped);
    expect(refused.data?.deleteToken).toMatchObject({
      __typename: 'ForbiddenError',
      code: 'FORBIDDEN',
      message: forbidden('Deleting', tokens.general, '/general/high/'),
    });
    expect((await readToken(gateway, tenant.privateKey, tokens.general)).data).toBe('general secret');
    const covered = await createTokenWith(scoped, { type: 'TOKEN', data: 'short-lived', containers: ['/pci/low/'] });
    expect((await deleteToken(gateway, scoped, covered.id)).__typename).toBe('Token');
    expect(await readToken(gateway, tenant.privateKey, covered.id)).toBeNull();
  });
});

// A formula's tokenize block creates tokens for the caller, so the caller's containers bound them as createToken's
// do: otherwise a formula that passes its args through would let a /pci/ key create tokens anywhere.
describe("a formula's tokenize block scoped to the caller's containers", () => {
  let scoped: string;
  let passThrough: string;
  beforeAll(async () => {
    scoped = await applicationKey(gateway, tenant, 'PRIVATE', ['reactor:invoke', 'reactor:read'], ['/pci/']);
    passThrough = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async (req) => ({ raw: { ran: true }, tokenize: req.args.tokenize });',
    );
  });
  const tokenizing = (tokenize: unknown, key: string) =>
    gateway.gql<any>(REACT, { id: passThrough, args: { tokenize } }, key);
  const count = async () => (await listAllTokens(gateway, tenant.privateKey)).totalCount;

  it('creates the tokens its containers cover', async () => {
    const result = await tokenizing({ pin: { type: 'TOKEN', data: '1234', containers: ['/pci/low/'] } }, scoped);
    const id = result.data?.react.tokens.pin;
    expect(id).toEqual(expect.any(String));
    expect((await readToken(gateway, tenant.privateKey, id)).containers).toEqual(['/pci/low/']);
  });

  it('refuses, storing none of them, when one token lies outside them; the formula has run', async () => {
    const before = await count();
    const result = await tokenizing(
      {
        covered: { type: 'TOKEN', data: 'in', containers: ['/pci/low/'] },
        outside: { type: 'TOKEN', data: 'out', containers: ['/general/low/'] },
      },
      scoped,
    );
    expect(result.data?.react).toEqual({
      __typename: 'ForbiddenError',
      code: 'FORBIDDEN',
      status: 403,
      message:
        'The reactor ran, but its result is lost: tokenizing a token requires one of its containers (/general/low/) ' +
        "to lie in this application's token containers (/pci/).",
      detail: null,
      errors: { tokenize: ["a token in /general/low/ is outside the caller's reach"] },
    });
    // A plain value takes the default container of its type (/general/high/ for TOKEN): refused the same way.
    expect((await tokenizing({ plain: 'secret' }, scoped)).data?.react.code).toBe('FORBIDDEN');
    expect(await count()).toBe(before);
    // A key without token containers creates them anywhere, as before.
    const unscoped = await tokenizing({ plain: 'secret' }, tenant.privateKey);
    expect(unscoped.data?.react.tokens.plain).toEqual(expect.any(String));
  });

  it('refuses in an async run the same way, as its failed result', async () => {
    const queued = await gateway.gql<any>(
      REACT_ASYNC,
      { id: passThrough, args: { tokenize: { plain: 'secret' } } },
      scoped,
    );
    const requestId = queued.data?.reactAsync.asyncReactorRequestId;
    expect(requestId).toEqual(expect.any(String));
    const result = await until(
      `request ${requestId} to finish`,
      async () => {
        const row = (await gateway.gql<any>(REACTOR_RESULT, { reactorId: passThrough, requestId }, scoped)).data
          ?.reactorResult;
        return row?.status === 'FAILED' || row?.status === 'COMPLETED' ? row : undefined;
      },
      15_000,
    );
    expect(result).toMatchObject({ status: 'FAILED', tokens: null, error: { code: 'FORBIDDEN', status: 403 } });
  });
});
