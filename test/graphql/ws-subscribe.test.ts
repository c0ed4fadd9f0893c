import {
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLError,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
  parse,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors.ts';
import { maskError } from '../../src/graphql/graphql-errors.ts';
import { subscribeMasked } from '../../src/graphql/ws-subscribe.ts';
import { startTestGateway } from '../support/gateway.ts';

/** A source stream the test drives, recording whether it was closed. */
function source(values: unknown[], failWith?: unknown) {
  const state = { closed: false };
  const iterator: AsyncIterableIterator<unknown> = {
    async next() {
      if (state.closed) return { value: undefined, done: true };
      if (values.length > 0) return { value: values.shift(), done: false };
      if (failWith) throw failWith;
      return new Promise<IteratorResult<unknown>>(() => {});
    },
    async return() {
      state.closed = true;
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return { iterator, state };
}

function setup(subscribe: () => unknown) {
  const unexpected: unknown[] = [];
  const schema = new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLString } } }),
    subscription: new GraphQLObjectType({
      name: 'Subscription',
      fields: {
        tick: {
          type: new GraphQLObjectType({
            name: 'Tick',
            fields: {
              text: { type: GraphQLString, resolve: (value: string) => value },
              broken: {
                type: GraphQLString,
                resolve: () => {
                  throw new Error('secret detail');
                },
              },
              missing: {
                type: GraphQLString,
                resolve: () => {
                  throw new NotFoundError('Nothing here.');
                },
              },
            },
          }),
          subscribe,
          resolve: (value: unknown) => value,
        },
      },
    }),
  });
  const args = (query: string): ExecutionArgs => ({ schema, document: parse(query), contextValue: {} });
  const mask = (error: unknown) => maskError(error, (original) => unexpected.push(original));
  return { args, mask, unexpected };
}

describe('subscribeMasked (graphql-ws subscriptions)', () => {
  it('executes each event against the selection and masks field errors as Yoga does', async () => {
    const { iterator } = source(['a']);
    const { args, mask, unexpected } = setup(() => iterator);
    const stream = (await subscribeMasked(
      args('subscription { tick { text broken missing } }'),
      mask,
    )) as AsyncIterableIterator<ExecutionResult>;
    const { value } = await stream.next();
    expect(value?.data).toEqual({ tick: { text: 'a', broken: null, missing: null } });
    expect(value?.errors?.map((e: GraphQLError) => [e.message, e.extensions?.code, e.path])).toEqual([
      ['Unexpected error.', 'INTERNAL_SERVER_ERROR', ['tick', 'broken']],
      ['Nothing here.', 'NOT_FOUND', ['tick', 'missing']],
    ]);
    expect(unexpected).toEqual([new Error('secret detail')]);
  });

  it('rejects next() with the masked error when the source throws', async () => {
    const domain = source([], new NotFoundError('Gone.'));
    const first = setup(() => domain.iterator);
    const stream = (await subscribeMasked(first.args('subscription { tick { text } }'), first.mask)) as AsyncIterator<
      ExecutionResult,
      unknown
    >;
    await expect(stream.next()).rejects.toMatchObject({ message: 'Gone.', extensions: { code: 'NOT_FOUND' } });

    const unknown = source([], new Error('database password wrong'));
    const second = setup(() => unknown.iterator);
    const other = (await subscribeMasked(second.args('subscription { tick { text } }'), second.mask)) as AsyncIterator<
      ExecutionResult,
      unknown
    >;
    await expect(other.next()).rejects.toMatchObject({ message: 'Unexpected error.' });
    expect(second.unexpected).toHaveLength(1);
  });

  it('lets abort errors through unmasked (Yoga does too)', async () => {
    const abort = new DOMException('stopped', 'AbortError');
    const { iterator } = source([], abort);
    const { args, mask } = setup(() => iterator);
    const stream = (await subscribeMasked(args('subscription { tick { text } }'), mask)) as AsyncIterator<
      ExecutionResult,
      unknown
    >;
    await expect(stream.next()).rejects.toBe(abort);
  });

  it('answers a failed setup with one masked result instead of a stream', async () => {
    const { args, mask, unexpected } = setup(() => {
      throw new Error('resolver bug');
    });
    const result = await subscribeMasked(args('subscription { tick { text } }'), mask);
    expect(result).toEqual({ errors: [expect.objectContaining({ message: 'Unexpected error.' })] });
    expect(unexpected).toHaveLength(1);
  });

  it('return() closes the source, and a next() after it is done', async () => {
    const { iterator, state } = source([]);
    const { args, mask } = setup(() => iterator);
    const stream = (await subscribeMasked(args('subscription { tick { text } }'), mask)) as AsyncIterator<
      ExecutionResult,
      unknown
    >;
    expect(await stream.return?.()).toEqual({ value: undefined, done: true });
    expect(state.closed).toBe(true);
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });
});

describe("Yoga's plugins", () => {
  it('hook subscribe only where src/graphql/ws-subscribe.ts reproduces them', async () => {
    // Yoga's useEngine, useResultProcessors, our useEngine (graphql-js), the abort-error hook, useMaskedErrors, and
    // createHttpStreams' plugin (HTTP streams only: src/graphql/ws-keys.ts does its work for graphql-ws sockets).
    // A new plugin with an onSubscribe hook would not run for graphql-ws: decide there whether it must, then update.
    const gateway = await startTestGateway();
    try {
      const plugins = (gateway.app.yoga as unknown as { plugins: ({ onSubscribe?: unknown } | null)[] }).plugins;
      expect(plugins.filter((plugin) => plugin?.onSubscribe).length).toBe(6);
    } finally {
      await gateway.close();
    }
  });
});
