import { ServiceUnavailableError } from '../errors.ts';

/**
 * Values a subscriber may have waiting before it is cut off. The same bound as the Repeater this replaces (its
 * limit on pending pushes); a client this far behind is not reading its socket.
 */
export const MAX_BUFFERED = 1024;

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * The iterator behind one live subscription: a producer (the event hub) calls `push`, graphql-ws pulls with `next`.
 * Hand-written rather than a Repeater or an async generator because ten thousand idle subscriptions each keep one
 * alive: this is one object with a pending resolver, plus an array only while the consumer lags behind
 * (BENCHMARKS.md, idle subscriptions). Subclasses say how to stop the producer (`detach`), which runs exactly once:
 * on return(), throw() or overflow.
 *
 * Semantics are an async generator's that ends when told to: values pushed while nobody waits are buffered and
 * delivered in order; return() and throw() end it at once (buffered values are dropped, a pending next() resolves
 * done); every next() after the end is done. Concurrent next() calls are answered in call order.
 */
export abstract class SubscriberQueue<T> implements AsyncIterableIterator<T> {
  /** Values pushed while nobody waited; allocated on first need. */
  #buffer: T[] | null = null;
  /** The pending next()'s resolver and promise (the promise lets a concurrent next() queue behind it). */
  #resolve: ((result: IteratorResult<T>) => void) | null = null;
  #pending: Promise<IteratorResult<T>> | null = null;
  /** Set on overflow: the next next() rejects with it, then the queue is done. */
  #failure: Error | null = null;
  #closed = false;

  /** Stops whatever pushes into this queue (called once). */
  protected abstract detach(): void;

  push(value: T): void {
    if (this.#closed) return;
    const resolve = this.#resolve;
    if (resolve) {
      this.#resolve = null;
      this.#pending = null;
      resolve({ value, done: false });
      return;
    }
    this.#buffer ??= [];
    if (this.#buffer.length >= MAX_BUFFERED) {
      // Ending it is honest where dropping would not be: the client learns it missed events and can resubscribe.
      this.#close();
      this.#failure = new ServiceUnavailableError(
        `The subscription fell more than ${MAX_BUFFERED} events behind and was ended; subscribe again.`,
      );
      return;
    }
    this.#buffer.push(value);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#pending) return this.#pending.then(() => this.next());
    const buffer = this.#buffer;
    if (buffer !== null && buffer.length > 0) {
      const value = buffer.shift() as T;
      if (buffer.length === 0) this.#buffer = null;
      return Promise.resolve({ value, done: false });
    }
    if (this.#failure) {
      const failure = this.#failure;
      this.#failure = null;
      return Promise.reject(failure);
    }
    if (this.#closed) return Promise.resolve(DONE);
    this.#pending = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    return this.#pending;
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    this.#close();
    this.#failure = null;
    return Promise.resolve(value === undefined ? DONE : { value: value as T, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    // Like a generator that does not catch it: ends, and the caller gets its error back.
    this.#close();
    this.#failure = null;
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer = null;
    const resolve = this.#resolve;
    this.#resolve = null;
    this.#pending = null;
    this.detach();
    resolve?.(DONE);
  }
}

/**
 * Local subscribers of one kind of notification, by key (tenant or request). Each subscriber is its own queue and
 * carries its filter as data, so the hub holds no closure per subscription (BENCHMARKS.md, idle subscriptions).
 */
export class Channel<T, F> {
  readonly subscribers = new Map<string, Set<Subscriber<T, F>>>();

  constructor(private readonly accepts: (value: T, filter: F) => boolean) {}

  subscribe(key: string, filter: F): Subscriber<T, F> {
    const subscriber = new Subscriber(this, key, filter);
    let set = this.subscribers.get(key);
    if (!set) {
      set = new Set();
      this.subscribers.set(key, set);
    }
    set.add(subscriber);
    return subscriber;
  }

  remove(subscriber: Subscriber<T, F>): void {
    const set = this.subscribers.get(subscriber.key);
    if (!set?.delete(subscriber)) return;
    if (set.size === 0) this.subscribers.delete(subscriber.key);
  }

  dispatch(key: string, value: T): void {
    const set = this.subscribers.get(key);
    if (!set) return;
    for (const subscriber of set) if (this.accepts(value, subscriber.filter)) subscriber.push(value);
  }

  count(): number {
    let count = 0;
    for (const set of this.subscribers.values()) count += set.size;
    return count;
  }
}

export class Subscriber<T, F> extends SubscriberQueue<T> {
  constructor(
    private readonly channel: Channel<T, F>,
    readonly key: string,
    readonly filter: F,
  ) {
    super();
  }

  protected detach(): void {
    this.channel.remove(this);
  }
}
