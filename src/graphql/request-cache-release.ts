import type { Plugin } from '@envelop/core';
import { RequestCache } from '@pothos/plugin-scope-auth';

/**
 * Drops Pothos scope-auth's per-request cache when an operation's execution is done.
 *
 * Why: that cache is a WeakMap keyed by the GraphQL context, created once at startup and so in V8's old generation,
 * and each entry holds its context. V8's young-generation collector (the scavenger) treats such an entry as alive:
 * it cannot tell that the key is only reachable through the entry's own value. So every request whose resolvers
 * checked auth scopes (every mutation, `react` included) kept its context, and everything the context reaches,
 * alive through every scavenge until the next full collection: about 8 KB per `react`, 40 MB/s promoted at
 * 5,000 requests/s, and scavenge pauses of 110-130 ms per second of load instead of 15 (BENCHMARKS.md, sixth
 * session). A deleted entry holds nothing, and the context dies young as it should.
 *
 * Execution is the last use of the cache: the scopes are evaluated inside resolvers. Subscriptions do not run
 * through envelop's execute (src/graphql/ws-subscribe.ts); their contexts live as long as their connection anyway.
 */
export function useRequestCacheRelease(): Plugin {
  return {
    onExecute({ args }) {
      const context = args.contextValue as object;
      return {
        onExecuteDone({ result }) {
          // An incremental result (@defer/@stream) still resolves fields after this; this schema has none, but
          // keep the cache for as long as such a result runs rather than assume so.
          if (isAsyncIterable(result)) return { onEnd: () => RequestCache.clearForContext(context) };
          RequestCache.clearForContext(context);
          return undefined;
        },
      };
    },
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
