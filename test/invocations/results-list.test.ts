import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT, REACT_ASYNC, REACTOR_RESULT } from '../support/fixtures.ts';
import { errorCode, startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';
import { principalFor } from '../tokens/support.ts';

// `reactorResults`: the tenant's kept async invocations, to find what is still queued or what failed without
// having kept every request id.
let gateway: TestGateway;
let tenant: TestTenant;
beforeAll(async () => {
  gateway = await startTestGateway();
  tenant = await gateway.createTenant();
});
afterAll(async () => {
  await gateway?.close();
});

const RESULTS = `query($reactorId: UUID, $status: AsyncReactorRequestStatus, $first: Int, $after: String) {
  reactorResults(reactorId: $reactorId, status: $status, first: $first, after: $after) {
    totalCount edges { node { id reactorId status error { code } } } pageInfo { hasNextPage endCursor } } }`;

async function queue(reactorId: string, key = tenant.privateKey): Promise<string> {
  const queued = await gateway.gql<any>(REACT_ASYNC, { id: reactorId }, key);
  const requestId = queued.data?.reactAsync.asyncReactorRequestId;
  await until('the async run done', async () => {
    const row = (await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, key)).data?.reactorResult;
    return row?.status === 'COMPLETED' || row?.status === 'FAILED' ? true : undefined;
  });
  return requestId;
}

async function listAll(variables: Record<string, unknown>, key = tenant.privateKey) {
  const nodes: any[] = [];
  let after: string | null = null;
  let totalCount = -1;
  for (;;) {
    const page: any = (await gateway.gql<any>(RESULTS, { ...variables, first: 2, after }, key)).data?.reactorResults;
    nodes.push(...page.edges.map((edge: any) => edge.node));
    totalCount = page.totalCount;
    if (!page.pageInfo.hasNextPage) return { nodes, totalCount };
    after = page.pageInfo.endCursor;
  }
}

describe('reactorResults', () => {
  it('lists the kept async invocations oldest first, by reactor and by status, a page at a time', async () => {
    const works = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      'module.exports = async () => ({ raw: 1 });',
    );
    const fails = await createReactorWithCode(
      gateway,
      tenant.managementKey,
      "module.exports = async () => { throw new Error('no'); };",
    );
    const done = [await queue(works), await queue(fails), await queue(works)];

    const all = await listAll({});
    expect(all.nodes.map((node) => node.id)).toEqual(done);
    expect(all.totalCount).toBe(3);
    expect((await listAll({ reactorId: works })).nodes.map((node) => node.id)).toEqual([done[0], done[2]]);
    const failed = await listAll({ status: 'FAILED' });
    expect(failed).toEqual({
      nodes: [{ id: done[1], reactorId: fails, status: 'FAILED', error: { code: 'REACTOR_RUNTIME_ERROR' } }],
      totalCount: 1,
    });
    expect(await listAll({ reactorId: works, status: 'FAILED' })).toEqual({ nodes: [], totalCount: 0 });

    // Another tenant sees none of them; a key with neither reactor:invoke nor token:use is refused.
    const other = await gateway.createTenant();
    expect(await listAll({}, other.privateKey)).toEqual({ nodes: [], totalCount: 0 });
    const publicKey = await gateway.gql<any>(
      'mutation { createApplication(input: { name: "Browser", type: PUBLIC }) { ... on CreateApplicationPayload { key } } }',
      {},
      tenant.managementKey,
    );
    expect(errorCode(await gateway.gql(RESULTS, {}, publicKey.data.createApplication.key))).toBe('FORBIDDEN');
  });
});

// Another application's run may have detokenized tokens outside a scoped application's containers into its `raw`.
describe('async results of an application with token containers', () => {
  it('are only those it queued itself; a key without containers reads them all', async () => {
    const own = await gateway.createTenant();
    const scopedKey = await gateway.gql<any>(
      `mutation { createApplication(input: { name: "PCI", type: PRIVATE, permissions: ["reactor:invoke"],
        tokenContainers: ["/pci/"] }) { ... on CreateApplicationPayload { key } } }`,
      {},
      own.managementKey,
    );
    const scoped = scopedKey.data.createApplication.key as string;
    const reactorId = await createReactorWithCode(
      gateway,
      own.managementKey,
      "module.exports = async () => ({ raw: { secret: 'from a run' } });",
    );
    const mine = await queue(reactorId, scoped);
    const theirs = await queue(reactorId, own.privateKey);

    const read = async (requestId: string, key: string) =>
      (await gateway.gql<any>(REACTOR_RESULT, { reactorId, requestId }, key)).data?.reactorResult;
    expect(await read(mine, scoped)).toMatchObject({
      id: mine,
      applicationId: (await principalFor(gateway, scoped)).applicationId,
    });
    expect(await read(theirs, scoped)).toBeNull();
    expect(await listAll({}, scoped)).toEqual({
      nodes: [{ id: mine, reactorId, status: 'COMPLETED', error: null }],
      totalCount: 1,
    });
    const follow = gateway.app.services.invocations.resultUpdates(await principalFor(gateway, scoped), theirs);
    await expect(follow.next()).rejects.toThrow('Reactor request not found.');
    const followOwn = gateway.app.services.invocations.resultUpdates(await principalFor(gateway, scoped), mine);
    expect((await followOwn.next()).value).toMatchObject({ id: mine, status: 'COMPLETED' });
    await followOwn.return?.();

    expect((await read(mine, own.privateKey)).raw).toEqual({ secret: 'from a run' });
    expect((await listAll({}, own.privateKey)).nodes.map((node) => node.id)).toEqual([mine, theirs]);
  });

  it("are followed as reactorEvents only for its own invocations; an error message may carry another run's data", async () => {
    const own = await gateway.createTenant();
    const created = await gateway.gql<any>(
      `mutation { createApplication(input: { name: "PCI", type: PRIVATE, permissions: ["reactor:invoke", "reactor:read"],
        tokenContainers: ["/pci/"] }) { ... on CreateApplicationPayload { key } } }`,
      {},
      own.managementKey,
    );
    const scoped = await principalFor(gateway, created.data.createApplication.key);
    const everyone = await principalFor(gateway, own.privateKey);
    const reactorId = await createReactorWithCode(
      gateway,
      own.managementKey,
      'module.exports = async (req) => { throw new Error(`card ${req.args.n}`); };',
    );
    const scopedEvents = gateway.app.services.invocations.events(scoped, null);
    const allEvents = gateway.app.services.invocations.events(everyone, null);
    try {
      await gateway.gql(REACT, { id: reactorId, args: { n: '4242' } }, own.privateKey);
      await gateway.gql(REACT, { id: reactorId, args: { n: '1881' } }, created.data.createApplication.key);
      const seen = async (events: AsyncIterableIterator<any>, count: number) => {
        const values = [];
        for (let i = 0; i < count; i++) values.push((await events.next()).value);
        return values.map((event) => `${event.type} ${event.error?.message ?? ''}`.trim());
      };
      expect(await seen(scopedEvents, 2)).toEqual(['reactor.invoked', 'reactor.failed card 1881']);
      expect(await seen(allEvents, 4)).toEqual([
        'reactor.invoked',
        'reactor.failed card 4242',
        'reactor.invoked',
        'reactor.failed card 1881',
      ]);
    } finally {
      await scopedEvents.return?.();
      await allEvents.return?.();
    }
  });
});
