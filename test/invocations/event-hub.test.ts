import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, type Notifier, openDatabase } from '../../src/db/database.ts';
import { createEventHub, type EventHub, type ReactorEvent } from '../../src/invocations/events.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase, usingPostgres } from '../support/database.ts';
import { testSealing } from '../support/requests.ts';

// The hub as the app builds it: in-process delivery on PGlite, LISTEN/NOTIFY on Postgres.
let database: TestDatabase;
let handle: DatabaseHandle;
let hub: EventHub;
beforeAll(async () => {
  database = await createTestDatabase();
  handle = await openDatabase(database.target);
  hub = createEventHub(handle.notifier, createLogger('silent'), {
    singleProcess: handle.kind === 'pglite',
    errorSeal: testSealing.eventError,
  });
  await hub.start();
});
afterAll(async () => {
  await hub?.close();
  await handle?.close();
  await database?.drop();
});

const event = (
  tenantId: string,
  reactorId: string,
  type: ReactorEvent['type'],
  applicationId = 'app-1',
): ReactorEvent => ({
  type,
  tenantId,
  reactor: { id: reactorId, name: 'r' },
  request: { id: '0197a0f0-0000-7000-8000-000000000001', invocationType: 'SYNC', applicationId },
  elapsedMs: null,
  error: null,
  occurredAt: new Date(0).toISOString(),
});

const within = <T>(promise: Promise<T>, ms = 5_000) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms))]);

describe('the event hub', () => {
  it("delivers a tenant's events to its subscribers only, filtered by reactor or by invoker, and return() unregisters", async () => {
    const all = hub.events('tenant-a', null);
    const one = hub.events('tenant-a', 'reactor-2');
    const other = hub.events('tenant-b', null);
    const invokedBy = hub.events('tenant-a', null, 'app-2');
    expect(hub.subscriberCount()).toEqual({ events: 4, results: 0 });

    hub.publishEvent(event('tenant-a', 'reactor-1', 'reactor.invoked'));
    hub.publishEvent(event('tenant-a', 'reactor-2', 'reactor.completed'));
    hub.publishEvent(event('tenant-a', 'reactor-1', 'reactor.failed', 'app-2'));
    const first = await within(all.next());
    const second = await within(all.next());
    const third = await within(all.next());
    expect([first, second, third].map(({ value }) => value?.reactor.id)).toEqual([
      'reactor-1',
      'reactor-2',
      'reactor-1',
    ]);
    expect((await within(one.next())).value).toMatchObject({ type: 'reactor.completed', reactor: { id: 'reactor-2' } });
    expect((await within(invokedBy.next())).value).toMatchObject({
      type: 'reactor.failed',
      request: { applicationId: 'app-2' },
    });
    await invokedBy.return!();

    const otherNext = other.next();
    await all.return!();
    await one.return!();
    await other.return!();
    // The tenant-b subscriber saw nothing: its pending next() ends with the subscription.
    expect(await otherNext).toEqual({ value: undefined, done: true });
    expect(hub.subscriberCount()).toEqual({ events: 0, results: 0 });
  });

  it("wants a tenant's events only while someone subscribes to them", async () => {
    expect(hub.wantsEvents('tenant-w')).toBe(false);
    const subscriber = hub.events('tenant-w', 'some-reactor');
    expect(hub.wantsEvents('tenant-w')).toBe(true);
    expect(hub.wantsEvents('tenant-other')).toBe(false);
    await subscriber.return?.();
    expect(hub.wantsEvents('tenant-w')).toBe(false);
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

  it.skipIf(!usingPostgres)(
    'carries any text intact to another instance through NOTIFY, an error’s sealed',
    async () => {
      const otherHandle = await openDatabase(database.target);
      const other = createEventHub(otherHandle.notifier, createLogger('silent'), {
        singleProcess: false,
        errorSeal: testSealing.eventError,
      });
      await other.start();
      // What crosses the database, as anyone who may LISTEN reads it.
      const payloads: string[] = [];
      const listening = await handle.notifier.listen('reactor_events', (payload) => payloads.push(payload));
      try {
        const received = other.events('tenant-text', null);
        const name = 'quote " backslash \\ \\" newline \n tab \t unicode é 漢 😀 escaped nul \\u0000 end';
        const sent: ReactorEvent = {
          ...event('tenant-text', 'reactor-t', 'reactor.failed'),
          reactor: { id: 'reactor-t', name },
          error: { code: 'BAD_REQUEST', status: 400, message: 'line 1\nline 2 "quoted"', detail: null, errors: null },
        };
        // Until `other`'s announcement of the tenant has reached `hub` (./event-interest.ts), nothing is sent.
        let done = false;
        const next = received.next().finally(() => {
          done = true;
        });
        for (let i = 0; i < 200 && !done; i++) {
          hub.publishEvent(sent);
          await hub.flush();
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        expect((await within(next)).value).toEqual(sent);
        expect(payloads.join('\n')).toContain('reactor-t');
        expect(payloads.join('\n')).not.toContain('line 1');
        expect(payloads.join('\n')).toContain('BAD_REQUEST');
      } finally {
        await listening();
        await other.close();
        await otherHandle.close();
      }
    },
  );

  describe.skipIf(!usingPostgres)('between instances, events only for tenants with a subscriber elsewhere', () => {
    /** The real notifier, counting what is sent on each channel. */
    function counted(notifier: Notifier) {
      const sent = new Map<string, number>();
      const wrapped: Notifier = {
        listen: (channel, onPayload) => notifier.listen(channel, onPayload),
        onReconnect: (listener) => notifier.onReconnect(listener),
        notify: (channel, payloads) => {
          sent.set(channel, (sent.get(channel) ?? 0) + 1);
          return notifier.notify(channel, payloads);
        },
      };
      return { sent, wrapped };
    }

    async function instance(interest: { refreshMs: number; ttlMs: number }, wrap = (n: Notifier) => n) {
      const own = await openDatabase(database.target);
      const instanceHub = createEventHub(wrap(own.notifier), createLogger('silent'), {
        singleProcess: false,
        interest,
        errorSeal: testSealing.eventError,
      });
      await instanceHub.start();
      return {
        hub: instanceHub,
        close: async () => {
          await instanceHub.close();
          await own.close();
        },
      };
    }

    /** Publishes on `from` every 25 ms until `received` yields (or times out). */
    async function publishUntilReceived(
      from: EventHub,
      received: AsyncIterableIterator<ReactorEvent>,
      tenantId: string,
    ) {
      let done = false;
      const next = received.next().finally(() => {
        done = true;
      });
      for (let i = 0; i < 200 && !done; i++) {
        from.publishEvent(event(tenantId, 'reactor-i', 'reactor.invoked'));
        await from.flush();
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return within(next);
    }

    it('sends nothing while nobody elsewhere subscribes, starts once a subscriber is announced, stops after it leaves', async () => {
      const counting = counted(handle.notifier);
      const a = await instance({ refreshMs: 100, ttlMs: 300 }, () => counting.wrapped);
      const b = await instance({ refreshMs: 100, ttlMs: 300 });
      try {
        a.hub.publishEvent(event('tenant-i', 'reactor-i', 'reactor.invoked'));
        await a.hub.flush();
        expect(counting.sent.get('reactor_events') ?? 0).toBe(0);

        const received = b.hub.events('tenant-i', null);
        // The invoker crosses with the event: another instance's scoped subscribers filter on it.
        expect((await publishUntilReceived(a.hub, received, 'tenant-i')).value).toMatchObject({
          tenantId: 'tenant-i',
          request: { applicationId: 'app-1' },
        });
        expect(a.hub.wantsEvents('tenant-i')).toBe(true);
        expect(counting.sent.get('reactor_events')).toBeGreaterThan(0);

        await received.return?.();
        // B no longer announces the tenant; A trusts the last announcement for ttlMs.
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(a.hub.wantsEvents('tenant-i')).toBe(false);
        const before = counting.sent.get('reactor_events');
        a.hub.publishEvent(event('tenant-i', 'reactor-i', 'reactor.completed'));
        await a.hub.flush();
        expect(counting.sent.get('reactor_events')).toBe(before);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('sends a result change again on another connection when its NOTIFY fails, and later ones after it', async () => {
      let failures = 1;
      const failingOnce = (notifier: Notifier): Notifier => ({
        listen: (channel, onPayload) => notifier.listen(channel, onPayload),
        onReconnect: (listener) => notifier.onReconnect(listener),
        notify: (channel, payloads) =>
          channel === 'reactor_results' && failures-- > 0
            ? Promise.reject(new Error('Connection terminated'))
            : notifier.notify(channel, payloads),
      });
      const a = await instance({ refreshMs: 60_000, ttlMs: 180_000 }, failingOnce);
      const b = await instance({ refreshMs: 60_000, ttlMs: 180_000 });
      try {
        const waiting = b.hub.resultChanges('tenant-r', 'request-r');
        a.hub.publishResultChange({ tenantId: 'tenant-r', requestId: 'request-r', status: 'RUNNING' });
        // Queued while the first is being tried again: it goes out after it, not before.
        await new Promise((resolve) => setTimeout(resolve, 10));
        a.hub.publishResultChange({ tenantId: 'tenant-r', requestId: 'request-r', status: 'COMPLETED' });
        await a.hub.flush();
        const received = [(await within(waiting.next())).value, (await within(waiting.next())).value];
        expect(received.map((change) => change?.status)).toEqual(['RUNNING', 'COMPLETED']);
        expect(failures).toBeLessThan(0);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('has waiting result subscribers read their rows again now and then, in case a change was lost', async () => {
      const own = await openDatabase(database.target);
      const rereading = createEventHub(own.notifier, createLogger('silent'), {
        singleProcess: false,
        errorSeal: testSealing.eventError,
        resultRecheckMs: 100,
      });
      await rereading.start();
      try {
        // Nothing is published: the change it would have announced was lost.
        const waiting = rereading.resultChanges('tenant-l', 'request-l');
        expect((await within(waiting.next(), 2_000)).value).toEqual({
          tenantId: 'tenant-l',
          requestId: 'request-l',
          status: null,
        });
      } finally {
        await rereading.close();
        await own.close();
      }
    });

    it('an instance that starts later learns the existing subscribers from its hello, without waiting for a refresh', async () => {
      const b = await instance({ refreshMs: 60_000, ttlMs: 180_000 });
      const received = b.hub.events('tenant-h', null);
      // Let B's own announcement pass, so only the answer to the hello can teach C.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const c = await instance({ refreshMs: 60_000, ttlMs: 180_000 });
      try {
        expect((await publishUntilReceived(c.hub, received, 'tenant-h')).value).toMatchObject({ tenantId: 'tenant-h' });
      } finally {
        await received.return?.();
        await c.close();
        await b.close();
      }
    });
  });
});
