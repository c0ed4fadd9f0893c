import { LRUCache } from 'lru-cache';
import type { Notifier } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { LoadedReactor } from './pipeline.ts';
import type { ReactorLookup } from './service.ts';

const CHANNEL = 'reactor_changes';

/**
 * `react` needs the reactor and its formula on every call; they change rarely. This cache keeps them per instance
 * and drops an entry when the database announces a change (triggers of migration 0005, delivered by LISTEN/NOTIFY
 * to every instance). A load that raced with a change is not cached (generation check). The cache is emptied when
 * the listening connection comes back from a drop, and entries expire after a minute in any case.
 */
export async function createReactorCache(lookup: ReactorLookup, notifier: Notifier, log: Logger) {
  const cache = new LRUCache<string, LoadedReactor>({ max: 10_000, ttl: 60_000 });
  let generation = 0;

  function invalidate(change: { reactor?: string; formula?: string }): void {
    generation++;
    for (const [key, loaded] of cache.entries()) {
      if (loaded.reactor.id === change.reactor || loaded.formula.id === change.formula) cache.delete(key);
    }
  }

  function onChange(payload: string): void {
    try {
      invalidate(JSON.parse(payload) as { reactor?: string; formula?: string });
    } catch {
      generation++;
      log.warn('malformed reactor change notification; clearing the reactor cache');
      cache.clear();
    }
  }

  const unlisten = await notifier.listen(CHANNEL, onChange);
  // Changes announced while the listening connection was down are lost: forget everything.
  const stopForgetting = notifier.onReconnect(() => {
    generation++;
    cache.clear();
  });

  return {
    async loadReactorForInvocation(tenantId: string, reactorId: string): Promise<LoadedReactor | null> {
      const key = `${tenantId}:${reactorId}`;
      const cached = cache.get(key);
      if (cached) return cached;
      const startedAt = generation;
      const loaded = await lookup.loadReactorForInvocation(tenantId, reactorId);
      if (loaded && generation === startedAt) cache.set(key, loaded);
      return loaded;
    },
    /**
     * A change made through this instance: dropped at once, so the caller's next `react` sees it (the notification
     * from the database arrives a moment later and covers every other instance).
     */
    invalidate,
    async close() {
      stopForgetting();
      await unlisten();
    },
  };
}
