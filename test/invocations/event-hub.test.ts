import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.ts';
import { createEventHub, type EventHub, type ReactorEvent } from '../../src/invocations/events.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';

// The hub as the app builds it: in-process delivery on PGlite, LISTEN/NOTIFY on Postgres.
let database: TestDatabase;
let handle: DatabaseHandle;
let hub: EventHub;
beforeAll(async () => {
  database = await createTestDatabase();
  handle = await openDatabase(database.target);
  hub = createEventHub(handle.notifier, createLogger('silent'), { singleProcess: handle.kind === 'pglite' });
  await hub.start();
});
afterAll(async () => {
  await hub?.close();
  await handle?.close();
  await database?.drop();
});

const event = (tenantId: string, reactorId: string, type: ReactorEvent['type']): ReactorEvent => ({
  type,
  tenantId,
  reactor: { id: reactorId, name: 'r' },
  request: { id: '0197a0f0-0000-7000-8000-000000000001', invocationType: 'SYNC' },
  elapsedMs: null,
  error: null,
  occurredAt: new Date(0).toISOString(),
});

const within = <T>(promise: Promise<T>, ms = 5_000) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms))]);

describe('the event hub', () => {
  it("delivers a tenant's events to its subscribers only, filtered by reactor, and return() unregisters", async () => {
    const all = hub.events('tenant-a', null);
    const one = hub.events('tenant-a', 'reactor-2');
    const other = hub.events('tenant-b', null);
    expect(hub.subscriberCount()).toEqual({ events: 3, results: 0 });

    hub.publishEvent(event('tenant-a', 'reactor-1', 'reactor.invoked'));
    hub.publishEvent(event('tenant-a', 'reactor-2', 'reactor.completed'));
    const first = await within(all.next());
    const second = await within(all.next());
    expect([first.value?.reactor.id, second.value?.reactor.id]).toEqual(['reactor-1', 'reactor-2']);
    expect((await within(one.next())).value).toMatchObject({ type: 'reactor.completed', reactor: { id: 'reactor-2' } });

    const otherNext = other.next();
    await all.return!();
    await one.return!();
    await other.return!();
    // The tenant-b subscriber saw nothing: its pending next() ends with the subscription.
    expect(await otherNext).toEqual({ value: undefined, done: true });
    expect(hub.subscriberCount()).toEqual({ events: 0, results: 0 });
  });

  it('signals result changes of a request to subscribers of the same tenant', async () => {
    const mine = hub.resultChanges('tenant-a', 'request-1');
    const foreign = hub.resultChanges('tenant-b', 'request-1');
    expect(hub.subscriberCount().results).toBe(2);
    hub.publishResultChange({ tenantId: 'tenant-a', requestId: 'request-1', status: 'RUNNING' });
    expect((await within(mine.next())).value).toMatchObject({ requestId: 'request-1', status: 'RUNNING' });
    const foreignNext = foreign.next();
    await foreign.return!();
    expect(await foreignNext).toEqual({ value: undefined, done: true });
    await mine.return!();
    expect(hub.subscriberCount().results).toBe(0);
  });

  it.skipIf(!usingPostgres)('carries any text intact to another instance through NOTIFY', async () => {
    const otherHandle = await openDatabase(database.target);
    const other = createEventHub(otherHandle.notifier, createLogger('silent'), { singleProcess: false });
    await other.start();
    try {
      const received = other.events('tenant-text', null);
      const name = 'quote " backslash \\ \\" newline \n tab \t unicode é 漢 😀 escaped nul \\u0000 end';
      const sent: ReactorEvent = {
        ...event('tenant-text', 'reactor-t', 'reactor.failed'),
        reactor: { id: 'reactor-t', name },
        error: { code: 'BAD_REQUEST', status: 400, message: 'line 1\nline 2 "quoted"', detail: null, errors: null },
      };
      hub.publishEvent(sent);
      await hub.flush();
      expect((await within(received.next())).value).toEqual(sent);
    } finally {
      await other.close();
      await otherHandle.close();
    }
  });
});
