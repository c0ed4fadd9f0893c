import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Notifier } from '../db/database.ts';
import { isDatabaseUnavailable } from '../db/unavailable.ts';
import type { ErrorShape } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { DEFAULT_INTEREST, EventInterest, type InterestOptions } from './event-interest.ts';
import { Channel } from './subscriber-queue.ts';
import type { RequestStatus } from './tables.ts';

export type ReactorEventType = 'reactor.invoked' | 'reactor.completed' | 'reactor.failed';

export interface ReactorEvent {
  type: ReactorEventType;
  tenantId: string;
  reactor: { id: string; name: string };
  /** `applicationId`: the application that invoked; it also scopes who sees the event (service.ts, ownInvocationsOnly). */
  request: { id: string; invocationType: 'SYNC' | 'ASYNC'; applicationId: string };
  elapsedMs: number | null;
  error: ErrorShape | null;
  occurredAt: string;
}

interface ResultChange {
  tenantId: string;
  requestId: string;
  /** null: it may have changed unseen (notifications were lost); read it again. */
  status: RequestStatus | null;
}

/**
 * Seals the text of an event's error (message, detail) for the trip to other instances: a formula's message may hold
 * the detokenized data it was given, and any role that may connect to the database may LISTEN to the channel.
 */
export interface EventErrorSeal {
  seal(tenantId: string, requestId: string, text: { message: string; detail: string | null }): string;
  open(tenantId: string, requestId: string, sealed: string): { message: string; detail: string | null };
}

/** An event as it crosses to other instances: the error's text sealed into `sealedText`, the rest as it is. */
type SentEvent = ReactorEvent & { sealedText?: string };

const EVENTS_CHANNEL = 'reactor_events';
const RESULTS_CHANNEL = 'reactor_results';
/** Postgres refuses NOTIFY payloads of 8000 bytes or more; batches stay well under. */
const MAX_PAYLOAD_BYTES = 7000;
const MAX_ERROR_MESSAGE = 500;
/** The waits before a failed NOTIFY is tried again (on another of the pool's connections). */
const NOTIFY_RETRY_MS = [50, 500];
/** How long reactor events wait to share one NOTIFY with later ones (see createEventHub). */
const EVENTS_FLUSH_MS = 20;

/**
 * reactorEvents filters by reactor (null: every reactor of the tenant), and for an application with token containers
 * by the application that invoked (null: any; src/invocations/service.ts, ownInvocationsOnly, says why).
 */
interface EventFilter {
  reactorId: string | null;
  invokedBy: string | null;
}
/** The filter of most subscriptions, shared: ten thousand idle ones need not each hold a copy. */
const EVERY_EVENT: EventFilter = Object.freeze({ reactorId: null, invokedBy: null });
const acceptsEvent = (event: ReactorEvent, filter: EventFilter) =>
  (filter.reactorId === null || event.reactor.id === filter.reactorId) &&
  (filter.invokedBy === null || event.request.applicationId === filter.invokedBy);
/** Result changes are keyed by request id; the tenant check keeps another tenant's request id from matching. */
const acceptsChange = (change: ResultChange, tenantId: string | null) => change.tenantId === tenantId;

/**
 * Reactor events and result changes between gateway instances, over LISTEN/NOTIFY (Postgres or PGlite).
 * What an instance publishes reaches its own subscribers (and job runner) in-process on the next tick; other
 * instances get it through NOTIFY on two channels and fan it out, per tenant, to their subscribers, so a subscriber
 * on instance A sees what instance B published. Payloads are small: ids and a few scalars (results are re-read from
 * the table by the subscriber), in batches tagged with the sending instance, which ignores its own.
 *
 * Batching: result changes (which drive `reactorResult` subscriptions and wake other runners) go out once per tick;
 * reactor events once per EVENTS_FLUSH_MS, and only those of tenants that have a subscriber on another instance
 * (./event-interest.ts). Sync `react` publishes two events per call, and a NOTIFY per event
 * (two round trips, and Postgres serialises NOTIFY at commit) was the largest cost of `react` on Postgres after
 * the formula itself. Subscribers on other instances see events up to EVENTS_FLUSH_MS later; local ones at once.
 * In embedded mode (PGlite, one process) nothing is sent: nobody else is listening.
 */
export function createEventHub(
  notifier: Notifier,
  log: Logger,
  options: {
    singleProcess: boolean;
    interest?: InterestOptions;
    errorSeal: EventErrorSeal;
    /** How often waiting result subscribers read their rows again without a signal (default 30 s; tests shorten it). */
    resultRecheckMs?: number;
  },
) {
  const { errorSeal } = options;
  const eventSubscribers = new Channel<ReactorEvent, EventFilter>(acceptsEvent);
  const resultSubscribers = new Channel<ResultChange, string | null>(acceptsChange);
  const instanceId = randomUUID();
  // Reactor events go to other instances only for tenants with a subscriber there (./event-interest.ts).
  const interest = options.singleProcess
    ? null
    : new EventInterest(
        notifier,
        log,
        instanceId,
        () => [...eventSubscribers.subscribers.keys()],
        options.interest ?? DEFAULT_INTEREST,
      );
  const ownHead = `{"from":"${instanceId}","items":[`;
  const local: { channel: string; item: unknown }[] = [];
  const outgoing = new Map<string, string[]>([
    [EVENTS_CHANNEL, []],
    [RESULTS_CHANNEL, []],
  ]);
  const sendTimers = new Map<string, NodeJS.Immediate | NodeJS.Timeout>();
  /** Each channel's send in progress (sendNext). */
  const sending = new Map<string, Promise<void>>();
  const queuedListeners = new Set<() => void>();
  let localScheduled = false;
  let unlisten: (() => Promise<void>)[] = [];
  let stopRecheck = () => {};

  function onPayload(channel: string, payload: string): void {
    // This instance delivered its own batches locally already; `send` writes its id first, so an echo is known
    // without parsing it (under load, parsing our own echoes was 1% of a react's main-thread time).
    if (payload.startsWith(ownHead)) return;
    let batch: { from?: unknown; items?: unknown };
    try {
      batch = JSON.parse(payload);
    } catch {
      log.warn({ channel }, 'ignored a malformed notification');
      return;
    }
    // This instance delivered its own batches locally already.
    if (batch.from === instanceId || !Array.isArray(batch.items)) return;
    for (const item of batch.items) deliver(channel, channel === EVENTS_CHANNEL ? openedEvent(item) : item);
  }

  /** An event from another instance with its error's text opened (see `publishEvent`). */
  function openedEvent(item: SentEvent): ReactorEvent {
    const { sealedText, ...event } = item;
    if (!sealedText || !event.error) return event;
    try {
      const text = errorSeal.open(event.tenantId, event.request.id, sealedText);
      return { ...event, error: { ...event.error, ...text } };
    } catch (error) {
      log.warn({ err: error }, 'an event’s error text from another instance did not open');
      return { ...event, error: { ...event.error, message: 'The message could not be opened here.', detail: null } };
    }
  }

  function deliver(channel: string, item: unknown): void {
    if (channel === EVENTS_CHANNEL) {
      const event = item as ReactorEvent;
      eventSubscribers.dispatch(event.tenantId, event);
      return;
    }
    const change = item as ResultChange;
    resultSubscribers.dispatch(change.requestId, change);
    if (change.status === 'PENDING') for (const listener of queuedListeners) listener();
  }

  function deliverLocally(): void {
    localScheduled = false;
    for (const { channel, item } of local.splice(0)) deliver(channel, item);
  }

  /**
   * Sends what is queued on `channel` once the channel's send in progress is done: one at a time per channel, so a
   * batch tried again goes out before any later one, and other instances see a run's events in order.
   */
  function sendNext(channel: string): Promise<void> {
    sendTimers.delete(channel);
    const next = (sending.get(channel) ?? Promise.resolve()).then(() => send(channel));
    sending.set(channel, next);
    void next.then(() => sending.get(channel) === next && sending.delete(channel));
    return next;
  }

  async function send(channel: string): Promise<void> {
    const texts = outgoing.get(channel)!.splice(0);
    if (texts.length === 0) return;
    const payloads: string[] = [];
    let chunk: string[] = [];
    let size = ownHead.length + 2;
    for (const text of texts) {
      if (chunk.length > 0 && size + text.length + 1 > MAX_PAYLOAD_BYTES) {
        payloads.push(`${ownHead}${chunk.join(',')}]}`);
        chunk = [];
        size = ownHead.length + 2;
      }
      chunk.push(text);
      size += text.length + 1;
    }
    payloads.push(`${ownHead}${chunk.join(',')}]}`);
    // Every chunk in one statement: under load a 20 ms batch of events is a dozen payloads. A failure of the database
    // (the pool's connection was dropped) is tried again on another: a result change lost here left a subscriber on
    // another instance waiting for good (the periodic re-read below is the backstop, not the rule).
    for (const waitMs of [...NOTIFY_RETRY_MS, null]) {
      try {
        return await notifier.notify(channel, payloads);
      } catch (error) {
        if (waitMs === null || !isDatabaseUnavailable(error)) {
          return log.error({ err: error, channel }, 'NOTIFY failed; given up');
        }
        log.warn({ err: error, channel }, 'NOTIFY failed; trying again');
        await sleep(waitMs);
      }
    }
  }

  function scheduleSend(channel: string): void {
    if (sendTimers.has(channel)) return;
    sendTimers.set(
      channel,
      channel === EVENTS_CHANNEL
        ? setTimeout(() => void sendNext(channel), EVENTS_FLUSH_MS)
        : setImmediate(() => void sendNext(channel)),
    );
  }

  /** What other instances get of an event: its error's text sealed (EventErrorSeal), its code and status as they are. */
  function sentEvent(event: ReactorEvent): SentEvent {
    if (!event.error) return event;
    const { message, detail } = event.error;
    const sealedText = errorSeal.seal(event.tenantId, event.request.id, { message, detail: detail ?? null });
    return { ...event, error: { ...event.error, message: '', detail: null }, sealedText };
  }

  /** Delivers `item` here, and sends `remote` (what other instances are to get of it) unless it is null. */
  function enqueue(channel: string, item: unknown, remote: unknown | null): void {
    local.push({ channel, item });
    if (!localScheduled) {
      localScheduled = true;
      setImmediate(deliverLocally);
    }
    if (options.singleProcess || remote === null) return;
    outgoing.get(channel)!.push(JSON.stringify(remote));
    scheduleSend(channel);
  }

  /**
   * After the listening connection came back from a drop, what other instances announced meanwhile is lost: every
   * waiting result subscriber reads its row again, the job runners look for queued requests, and the other instances
   * are asked which tenants they want events for.
   */
  function recheck(): void {
    recheckResults();
    for (const listener of queuedListeners) listener();
    interest?.hello();
  }

  /** Every waiting `reactorResult` subscriber reads its row again. */
  function recheckResults(): void {
    for (const [requestId, subscribers] of resultSubscribers.subscribers) {
      for (const subscriber of subscribers) subscriber.push({ tenantId: subscriber.filter!, requestId, status: null });
    }
  }

  /** Delivers and sends everything still queued now (shutdown, tests). */
  async function flush(): Promise<void> {
    deliverLocally();
    for (const [channel, timer] of sendTimers) {
      clearTimeout(timer as NodeJS.Timeout);
      clearImmediate(timer as NodeJS.Immediate);
      void sendNext(channel);
    }
    await Promise.all(sending.values());
  }

  return {
    async start(): Promise<void> {
      unlisten = [
        await notifier.listen(EVENTS_CHANNEL, (payload) => onPayload(EVENTS_CHANNEL, payload)),
        await notifier.listen(RESULTS_CHANNEL, (payload) => onPayload(RESULTS_CHANNEL, payload)),
      ];
      await interest?.start();
      const stopOnReconnect = notifier.onReconnect(recheck);
      // Another instance's result change may still be lost (its NOTIFY failed every try, or it died between storing
      // a result and announcing it): waiting subscribers read their rows again now and then, so none waits forever.
      const rereads = options.singleProcess ? null : setInterval(recheckResults, options.resultRecheckMs ?? 30_000);
      rereads?.unref();
      stopRecheck = () => {
        stopOnReconnect();
        if (rereads) clearInterval(rereads);
      };
    },

    publishEvent(event: ReactorEvent): void {
      const error = event.error && {
        ...event.error,
        message: event.error.message.slice(0, MAX_ERROR_MESSAGE),
        detail: event.error.detail?.slice(0, MAX_ERROR_MESSAGE) ?? null,
        // Field messages can be long (and come from formula code): subscribers read them from the result instead.
        errors: null,
      };
      const trimmed = { ...event, error };
      enqueue(EVENTS_CHANNEL, trimmed, interest?.wanted(event.tenantId) ? sentEvent(trimmed) : null);
    },

    /**
     * Whether anyone, here or on another instance, subscribes to this tenant's reactor events now: `react` skips
     * building its two events when no one does (the common case).
     */
    wantsEvents(tenantId: string): boolean {
      return eventSubscribers.subscribers.has(tenantId) || (interest?.wanted(tenantId) ?? false);
    },

    publishResultChange(change: ResultChange): void {
      enqueue(RESULTS_CHANNEL, change, change);
    },

    /**
     * Events of one tenant (optionally one reactor, or those one application invoked), from every instance.
     * Registered at once; return() unregisters. A subscriber more than MAX_BUFFERED events behind is ended with an
     * error (./subscriber-queue.ts).
     */
    events(
      tenantId: string,
      reactorId: string | null,
      invokedBy: string | null = null,
    ): AsyncIterableIterator<ReactorEvent> {
      const first = !eventSubscribers.subscribers.has(tenantId);
      const filter = reactorId === null && invokedBy === null ? EVERY_EVENT : { reactorId, invokedBy };
      const subscriber = eventSubscribers.subscribe(tenantId, filter);
      if (first) interest?.added(tenantId);
      return subscriber;
    },

    /** Signals that a request changed state somewhere; the subscriber re-reads the row. */
    resultChanges(tenantId: string, requestId: string): AsyncIterableIterator<ResultChange> {
      return resultSubscribers.subscribe(requestId, tenantId);
    },

    /** Live local subscribers (events, result changes): tests check that ended subscriptions unregister. */
    subscriberCount(): { events: number; results: number } {
      return { events: eventSubscribers.count(), results: resultSubscribers.count() };
    },

    /** Called whenever any instance queues an async request: wakes the job runners. */
    onRequestQueued(listener: () => void): () => void {
      queuedListeners.add(listener);
      return () => queuedListeners.delete(listener);
    },

    flush,

    async close(): Promise<void> {
      stopRecheck();
      await flush();
      await interest?.close();
      for (const stop of unlisten) await stop();
      unlisten = [];
    },
  };
}

export type EventHub = ReturnType<typeof createEventHub>;
