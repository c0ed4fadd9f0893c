import type { Plugin } from '@envelop/core';
import { type ExecutionResult, GraphQLError } from 'graphql';
import type { Principal } from '../auth/service.ts';
import type { GraphQLContext } from './context.ts';
import { KEY_RECHECK_MS, sameGrant } from './ws-keys.ts';

type Authenticate = (key: string) => Promise<Principal | null>;

/**
 * A subscription over HTTP (server-sent events, or multipart) answers to the same rules as one over graphql-ws
 * (src/graphql/ws-keys.ts, src/server.ts):
 * - once its key stops being valid (its application deleted, its key regenerated) or grants something else
 *   (permissions or token containers changed), the stream ends, within `recheckMs`, with one last result saying why.
 *   Without this, a stream opened with a leaked key went on receiving the tenant's events after the key was revoked;
 * - a shutdown ends it (`endAll`), as it closes graphql-ws sockets: the HTTP server would otherwise wait for the
 *   client to leave, until SHUTDOWN_TIMEOUT_MS was over.
 * graphql-ws subscriptions do not pass through here: they bypass envelop's subscribe.
 */
export function createHttpStreams(
  authenticate: Authenticate,
  keyOf: (headers: Headers | undefined) => string | null,
  recheckMs = KEY_RECHECK_MS,
) {
  const live = new Set<AsyncIterableIterator<ExecutionResult>>();
  const plugin: Plugin = {
    onSubscribe({ args }) {
      const context = args.contextValue as GraphQLContext & { request?: Request };
      const key = keyOf(context.request?.headers);
      const { principal } = context;
      // Without a key (the operator's ADMIN_API_KEY is configuration, not revocable) there is nothing to check.
      const check = principal && key ? () => stillGranted(authenticate, key, principal) : null;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!(Symbol.asyncIterator in result)) return;
          const stream: AsyncIterableIterator<ExecutionResult> = endWhenKeyChanges(result, check, recheckMs, () =>
            live.delete(stream),
          );
          live.add(stream);
          setResult(stream);
        },
      };
    },
  };
  return {
    plugin,
    /** Ends every open stream: each completes, and its response ends. */
    async endAll(): Promise<void> {
      await Promise.allSettled([...live].map((stream) => stream.return?.()));
    },
  };
}

export type HttpStreams = ReturnType<typeof createHttpStreams>;

/** Null while the key grants what it did; otherwise the error that ends its stream. Unanswered: keep going. */
async function stillGranted(authenticate: Authenticate, key: string, granted: Principal): Promise<GraphQLError | null> {
  const now = await authenticate(key).catch(() => undefined);
  if (now === undefined || (now !== null && sameGrant(granted, now))) return null;
  return now === null
    ? new GraphQLError('Unauthorized: the API key of this subscription is no longer valid.', {
        extensions: { code: 'UNAUTHENTICATED', status: 401 },
      })
    : new GraphQLError("Forbidden: the API key's permissions changed; subscribe again.", {
        extensions: { code: 'FORBIDDEN', status: 403 },
      });
}

/**
 * `source`, ended once `check` returns an error, which is delivered as the last result. An iterator object rather
 * than an async generator: a generator's `return()` waits for its pending `await`, so a client that went away would
 * hold the subscription (and this timer) until the next event.
 */
export function endWhenKeyChanges<T>(
  source: AsyncIterable<T>,
  check: (() => Promise<GraphQLError | null>) | null,
  recheckMs: number,
  onEnd: () => void = () => {},
): AsyncIterableIterator<T | { errors: GraphQLError[] }> {
  const iterator = source[Symbol.asyncIterator]();
  let done = false;
  let revoked: GraphQLError | null = null;
  // Settles the pending next() when the key is revoked. One per next(), not a race against one shared promise:
  // each race would leave a reaction on it, and a stream carrying a million events would hold a million.
  let interrupt: ((error: GraphQLError) => void) | null = null;
  let checking = false;
  const timer =
    check &&
    setInterval(() => {
      if (checking) return;
      checking = true;
      void check()
        .then((error) => {
          if (!error || revoked) return;
          revoked = error;
          interrupt?.(error);
        })
        .finally(() => {
          checking = false;
        });
    }, recheckMs);
  timer?.unref();
  const stop = () => {
    done = true;
    if (timer) clearInterval(timer);
    onEnd();
  };
  const finish = async () => {
    if (done) return;
    stop();
    await iterator.return?.();
  };
  const last = async (error: GraphQLError) => {
    await finish();
    return { done: false as const, value: { errors: [error] } };
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (done) return { done: true, value: undefined };
      if (revoked) return last(revoked);
      let outcome: IteratorResult<T> | GraphQLError;
      try {
        outcome = await new Promise<IteratorResult<T> | GraphQLError>((resolve, reject) => {
          interrupt = resolve;
          iterator.next().then(resolve, reject);
        });
      } catch (error) {
        // The source failed (a subscriber far behind, a resolver's error): Yoga ends the stream without return().
        stop();
        throw error;
      } finally {
        interrupt = null;
      }
      if (outcome instanceof GraphQLError) return last(outcome);
      if (outcome.done) await finish();
      return outcome;
    },
    async return() {
      await finish();
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      await finish();
      throw error;
    },
  };
}
