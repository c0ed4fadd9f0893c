import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReactorWithCode, REACT_ASYNC } from '../support/fixtures.ts';
import { startTestGateway, type TestGateway, type TestTenant } from '../support/gateway.ts';
import { testSealing } from '../support/requests.ts';
import { until } from '../support/until.ts';

// One job at a time, so the order the runner claims in is the order the jobs start.
let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway({ env: { JOB_CONCURRENCY: '1' } });
});
afterAll(async () => {
  await gateway?.close();
});

const QUICK_FORMULA = 'module.exports = async (req) => ({ raw: { n: req.args.n } });';

async function queue(tenant: TestTenant, reactorId: string, n: number): Promise<string> {
  const result = await gateway.gql<any>(REACT_ASYNC, { id: reactorId, args: { n } }, tenant.privateKey);
  const id = result.data?.reactAsync?.asyncReactorRequestId;
  if (!id) throw new Error(`reactAsync failed: ${JSON.stringify(result)}`);
  return id;
}

/** Every request's tenant and `n`, in the order the runner started them (after all have finished). */
async function startOrder(ids: string[]): Promise<string[]> {
  const db = gateway.app.database.db;
  return until(
    'every request to finish',
    async () => {
      const stored = await db.selectFrom('reactor_requests').selectAll().where('id', 'in', ids).execute();
      const rows = stored.map(testSealing.open);
      if (rows.length !== ids.length || rows.some((row) => row.status !== 'COMPLETED')) return undefined;
      return rows
        .sort((a, b) => (a.started_at as Date).getTime() - (b.started_at as Date).getTime())
        .map((row) => `${row.tenant_id}:${(row.args as { n: number }).n}`);
    },
    20_000,
  );
}

describe('the async queue across tenants', () => {
  it('takes turns: a request queued behind another tenant’s backlog runs after one of that backlog, not all of it', async () => {
    const busy = await gateway.createTenant('busy');
    const quiet = await gateway.createTenant('quiet');
    const busyReactor = await createReactorWithCode(gateway, busy.managementKey, QUICK_FORMULA);
    const quietReactor = await createReactorWithCode(gateway, quiet.managementKey, QUICK_FORMULA);

    await gateway.app.runner.stop();
    const ids: string[] = [];
    for (let n = 1; n <= 5; n++) ids.push(await queue(busy, busyReactor, n));
    ids.push(await queue(quiet, quietReactor, 1), await queue(quiet, quietReactor, 2));
    gateway.app.runner.start();

    const b = busy.tenantId;
    const q = quiet.tenantId;
    // First-come would run all five of the busy tenant's first.
    expect(await startOrder(ids)).toEqual([`${b}:1`, `${q}:1`, `${b}:2`, `${q}:2`, `${b}:3`, `${b}:4`, `${b}:5`]);
  });

  it('lets a tenant that queues later join the current turn rather than jump the whole queue', async () => {
    const first = await gateway.createTenant('first');
    const second = await gateway.createTenant('second');
    const late = await gateway.createTenant('late');
    const firstReactor = await createReactorWithCode(gateway, first.managementKey, QUICK_FORMULA);
    const secondReactor = await createReactorWithCode(gateway, second.managementKey, QUICK_FORMULA);
    const lateReactor = await createReactorWithCode(gateway, late.managementKey, QUICK_FORMULA);

    await gateway.app.runner.stop();
    const firstTurn = [await queue(first, firstReactor, 1), await queue(second, secondReactor, 1)];
    const ids: string[] = [];
    for (let n = 2; n <= 3; n++) ids.push(await queue(first, firstReactor, n), await queue(second, secondReactor, n));
    // Take the first turn (both tenants' first requests) off the queue, as a runner would have by now.
    const db = gateway.app.database.db;
    await db
      .updateTable('reactor_requests')
      .set({ status: 'COMPLETED', started_at: new Date(0), completed_at: new Date() })
      .where('id', 'in', firstTurn)
      .execute();
    // The queue is at turn 1 now; a newcomer's two requests go to turns 1 and 2, not 0 and 1.
    ids.push(await queue(late, lateReactor, 1), await queue(late, lateReactor, 2));
    const turns = (await db.selectFrom('reactor_requests').selectAll().where('id', 'in', ids).execute()).map(
      testSealing.open,
    );
    const turnOf = (tenant: TestTenant, n: number) =>
      turns.find((row) => row.tenant_id === tenant.tenantId && (row.args as { n: number }).n === n)?.queue_turn;
    expect([turnOf(first, 2), turnOf(second, 2), turnOf(late, 1)]).toEqual([1, 1, 1]);
    expect([turnOf(first, 3), turnOf(second, 3), turnOf(late, 2)]).toEqual([2, 2, 2]);
    gateway.app.runner.start();

    const order = await startOrder(ids);
    const [f, s, l] = [first.tenantId, second.tenantId, late.tenantId];
    expect(order).toEqual([`${f}:2`, `${s}:2`, `${l}:1`, `${f}:3`, `${s}:3`, `${l}:2`]);
  });
});
