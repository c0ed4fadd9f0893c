import { describe, expect, it } from 'vitest';
import { MAX_BUFFERED, SubscriberQueue } from '../../src/invocations/subscriber-queue.ts';

/** A queue whose producer is the test: `detached` counts how often the queue asked to be unregistered. */
class TestQueue extends SubscriberQueue<number> {
  detached = 0;
  protected detach(): void {
    this.detached++;
  }
}

const settled = async (promise: Promise<unknown>) => {
  let state = 'pending';
  promise.then(
    () => {
      state = 'fulfilled';
    },
    () => {
      state = 'rejected';
    },
  );
  await new Promise((resolve) => setImmediate(resolve));
  return state;
};

describe('SubscriberQueue', () => {
  it('delivers values pushed before and after next() in order', async () => {
    const queue = new TestQueue();
    queue.push(1);
    queue.push(2);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    const waiting = queue.next();
    expect(await settled(waiting)).toBe('fulfilled');
    const third = queue.next();
    expect(await settled(third)).toBe('pending');
    queue.push(3);
    queue.push(4);
    expect(await waiting).toEqual({ value: 2, done: false });
    expect(await third).toEqual({ value: 3, done: false });
    expect(await queue.next()).toEqual({ value: 4, done: false });
  });

  it('answers concurrent next() calls in call order', async () => {
    const queue = new TestQueue();
    const first = queue.next();
    const second = queue.next();
    const third = queue.next();
    queue.push(1);
    queue.push(2);
    queue.push(3);
    expect(await Promise.all([first, second, third])).toEqual([
      { value: 1, done: false },
      { value: 2, done: false },
      { value: 3, done: false },
    ]);
  });

  it('return() unregisters once, drops buffered values, and every later next() is done', async () => {
    const queue = new TestQueue();
    queue.push(1);
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    expect(queue.detached).toBe(1);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    queue.push(2);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    await queue.return();
    expect(queue.detached).toBe(1);
  });

  it('return() while a next() is pending resolves it done', async () => {
    const queue = new TestQueue();
    const pending = queue.next();
    const queued = queue.next();
    await queue.return();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await queued).toEqual({ value: undefined, done: true });
    expect(queue.detached).toBe(1);
  });

  it('throw() unregisters, rejects with the error, and resolves a pending next() done', async () => {
    const queue = new TestQueue();
    const pending = queue.next();
    const error = new Error('stop');
    await expect(queue.throw(error)).rejects.toBe(error);
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    expect(queue.detached).toBe(1);
  });

  it('is its own async iterator (for await ... of ends on return())', async () => {
    const queue = new TestQueue();
    queue.push(1);
    queue.push(2);
    const seen: number[] = [];
    for await (const value of queue) {
      seen.push(value);
      if (value === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    expect(queue.detached).toBe(1);
  });

  it('ends with SERVICE_UNAVAILABLE when more than MAX_BUFFERED values wait', async () => {
    const queue = new TestQueue();
    for (let i = 0; i <= MAX_BUFFERED; i++) queue.push(i);
    expect(queue.detached).toBe(1);
    await expect(queue.next()).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('keeps a subscriber that reads in time however many values pass through', async () => {
    const queue = new TestQueue();
    for (let i = 0; i < MAX_BUFFERED * 3; i++) {
      queue.push(i);
      expect((await queue.next()).value).toBe(i);
    }
    expect(queue.detached).toBe(0);
  });
});
