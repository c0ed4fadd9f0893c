import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { until } from '../support/until.ts';

// Three slots, the last of them reserved for tenants with no run on this instance (the default JOB_RESERVED_SLOTS).
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { JOB_CONCURRENCY: '3', JOB_RESERVED_SLOTS: '1' } });
});
afterAll(async () => {
  await gateway?.close();
});

const SLOW_FORMULA =
  'module.exports = async () => { await new Promise((r) => setTimeout(r, 2000)); return { raw: 1 } };';
const QUICK_FORMULA = 'module.exports = async () => ({ raw: 2 });';

async function queue(tenant: TestTenant, reactorId: string): Promise<string> {
  const result = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args: {} }, tenant.privateKey);
  const id = result.data?.reactAsync?.asyncReactorRequestId;
  if (!id) throw new Error(`reactAsync failed: ${JSON.stringify(result)}`);
  return id;
}

async function requests(ids: string[]) {
  return gateway.app.database.db
    .selectFrom('reactor_requests')
    .select(['id', 'status', 'started_at', 'completed_at'])
    .where('id', 'in', ids)
    .execute();
}

describe('the reserved async slot', () => {
  it('keeps a slot for another tenant while one tenant’s backlog of long runs holds the rest', async () => {
    const busy = await gateway.createTenant('busy');
    const other = await gateway.createTenant('other');
    const busyReactor = await createReactorWithCode(gateway, busy.managementKey, SLOW_FORMULA);
    const otherReactor = await createReactorWithCode(gateway, other.managementKey, QUICK_FORMULA);

    const backlog = [await queue(busy, busyReactor), await queue(busy, busyReactor), await queue(busy, busyReactor)];
    await until('two of the backlog running', async () => {
      const rows = await requests(backlog);
      return rows.filter((row) => row.status === 'RUNNING').length === 2 ? rows : undefined;
    });
    // A tenant alone does not take the reserved slot: its third request stays queued.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await requests(backlog)).map((row) => row.status).sort()).toEqual(['PENDING', 'RUNNING', 'RUNNING']);

    // Another tenant's request takes it at once, and is done while the backlog's first runs are still going.
    const quick = await queue(other, otherReactor);
    const done = await until('the other tenant’s request done', async () => {
      const [row] = await requests([quick]);
      return row?.status === 'COMPLETED' ? row : undefined;
    });
    const busyRows = await until('the backlog done', async () => {
      const rows = await requests(backlog);
      return rows.every((row) => row.status === 'COMPLETED') ? rows : undefined;
    });
    const firstBusyDone = Math.min(...busyRows.map((row) => (row.completed_at as Date).getTime()));
    // Without the reserve it waited for one of the two-second runs to end.
    expect((done.completed_at as Date).getTime()).toBeLessThan(firstBusyDone);
  }, 30_000);
});
