import { envelop, type Plugin, useEngine, useSchema } from '@envelop/core';
import SchemaBuilder, { contextCacheSymbol, createContextCache } from '@pothos/core';
import ScopeAuthPlugin, { RequestCache } from '@pothos/plugin-scope-auth';
import { execute, parse, subscribe } from 'graphql';
import { describe, expect, it } from 'vitest';
import { useRequestCacheRelease, withContextCacheKey } from '../../src/graphql/request-cache-release.ts';

/**
 * Pothos scope-auth caches per context in a WeakMap whose entries V8's scavenger keeps alive with their context
 * (src/graphql/request-cache-release.ts). The plugin must delete the entry once execution is done, and only then,
 * and unlink the key every other Pothos cache (dataloaders) uses.
 */
// As the dataloader plugin keeps its loaders: one entry per context, made on first use.
const otherCache = createContextCache(() => ({ loaders: 'of this request' }));

function scopedSchema() {
  const builder = new SchemaBuilder<{ Context: { allowed: boolean }; AuthScopes: { allowed: boolean } }>({
    plugins: [ScopeAuthPlugin],
    scopeAuth: { authScopes: (context) => ({ allowed: context.allowed }) },
  });
  // The cache the resolver saw while it ran: by then the scope check above it has filled it in.
  const seen: { cache?: unknown; other?: unknown } = {};
  builder.queryType({
    fields: (t) => ({
      secret: t.string({
        authScopes: { allowed: true },
        resolve: (_root, _args, context) => {
          seen.cache = RequestCache.fromContext(context, builder);
          seen.other = otherCache(context);
          return 'ok';
        },
      }),
    }),
  });
  return { builder, schema: builder.toSchema(), seen };
}

async function run(plugins: Plugin[]) {
  const { builder, schema, seen } = scopedSchema();
  const getEnveloped = envelop({ plugins: [useEngine({ parse, execute, subscribe }), useSchema(schema), ...plugins] });
  const context = withContextCacheKey({ allowed: true });
  const enveloped = getEnveloped(context);
  const result = await enveloped.execute({
    schema: enveloped.schema,
    document: enveloped.parse('{ secret }'),
    contextValue: context,
  });
  return {
    result,
    seen,
    context,
    cacheNow: () => RequestCache.fromContext(context, builder),
    otherNow: () => otherCache(context),
  };
}

describe('useRequestCacheRelease', () => {
  it('drops the scope cache of a context once its execution is done', async () => {
    const { result, seen, cacheNow } = await run([useRequestCacheRelease()]);
    expect(result).toEqual({ data: { secret: 'ok' } });
    expect(seen.cache).toBeInstanceOf(RequestCache);
    // Deleted: asking again builds a new one.
    expect(cacheNow()).not.toBe(seen.cache);
  });

  it('unlinks the key of every other Pothos cache, so their entries no longer reach the context', async () => {
    const { seen, context, otherNow } = await run([useRequestCacheRelease()]);
    expect(seen.other).toEqual({ loaders: 'of this request' });
    expect((context as Record<symbol, unknown>)[contextCacheSymbol]).toBeUndefined();
    expect(otherNow()).not.toBe(seen.other);
  });

  it('(control) without it the cache outlives the execution, held by the WeakMap', async () => {
    const { seen, cacheNow, otherNow } = await run([]);
    expect(cacheNow()).toBe(seen.cache);
    expect(otherNow()).toBe(seen.other);
  });

  it('still refuses what the scopes refuse', async () => {
    const { schema } = scopedSchema();
    const getEnveloped = envelop({
      plugins: [useEngine({ parse, execute, subscribe }), useSchema(schema), useRequestCacheRelease()],
    });
    const enveloped = getEnveloped({ allowed: false });
    const result = await enveloped.execute({
      schema: enveloped.schema,
      document: enveloped.parse('{ secret }'),
      contextValue: { allowed: false },
    });
    expect(result.errors?.[0]?.message).toMatch(/Not authorized/);
  });
});
