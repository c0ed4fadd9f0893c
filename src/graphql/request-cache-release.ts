import type { Plugin } from '@envelop/core';
import { contextCacheSymbol } from '@pothos/core';
import { RequestCache } from '@pothos/plugin-scope-auth';

/**
 * Pothos keeps per-request state in WeakMaps keyed by the GraphQL context: scope-auth's cache of evaluated scopes
 * (every field with `authScopes`, so every mutation) and the dataloader plugin's loaders (`t.loadable`). The maps
 * are made once at startup, so they sit in V8's old generation, and each entry's value holds its context. V8's
 * young-generation collector (the scavenger) keeps such an entry alive: it cannot see that the key is reachable
 * only through the entry's own value. So each request, with everything its context reaches (the request, its
 * variables, the principal...), survived every scavenge until the next full collection: about 8 KB per `react`,
 * 40 MB/s promoted at 5,000 requests/s, and scavenge pauses of 110-130 ms per second of load instead of 15
 * (BENCHMARKS.md, sixth session).
 *
 * Two measures, once an operation's execution is done (its last use of these caches):
 * - scope-auth's entry is deleted (`RequestCache.clearForContext`): the context then dies young;
 * - every other Pothos cache is keyed by the context's `contextCacheSymbol` object (`withContextCacheKey`), which
 *   is then unlinked from the context. Those entries cannot be deleted from here, but once no value reaches its key
 *   the scavenger drops them: in a model of this, promotion fell from 47 MB to 0.5 MB.
 *
 * Subscriptions do not run through envelop's execute (src/graphql/ws-subscribe.ts); their contexts live as long as
 * their connection, so their caches should too.
 */
export function useRequestCacheRelease(): Plugin {
  // One hooks object for every request (onExecuteDone gets the args): nothing is allocated per request.
  const afterExecute = {
    onExecuteDone({ args, result }: { args: { contextValue: unknown }; result: unknown }) {
      const context = args.contextValue as Record<symbol, unknown>;
      // An incremental result (@defer/@stream) still resolves fields after this; this schema has none, but keep
      // the caches for as long as such a result runs rather than assume so.
      if (isAsyncIterable(result)) return { onEnd: () => release(context) };
      release(context);
      return undefined;
    },
  };
  return { onExecute: () => afterExecute };
}

function release(context: Record<symbol, unknown>): void {
  RequestCache.clearForContext(context);
  // Not `delete`: that would turn the context into a slow dictionary-mode object for the rest of its life.
  context[contextCacheSymbol] = undefined;
}

/** The context's key for every Pothos cache: an object of its own, which `useRequestCacheRelease` unlinks. */
export function withContextCacheKey<T extends object>(context: T): T {
  (context as Record<symbol, unknown>)[contextCacheSymbol] = {};
  return context;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
