import { LRUCache } from 'lru-cache';
import type { Notifier } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { TokenRow } from './tables.ts';

const CHANNEL = 'token_changes';
/** Entries expire even without a notification, in case one was lost (see also `onReconnect` below). */
const TTL_MS = 60_000;
/**
 * A cached token whose expiry is this close is read from the database instead: the database clock decides expiry
 * (`expires_at > now()`), and this process's clock may be a little ahead of or behind it.
 */
const EXPIRY_MARGIN_MS = 1_000;

export interface TokenCache {
  /** A committed, live token row of this tenant as last read, or undefined (not cached, or close to its expiry). */
  get(tenantId: string, id: string): TokenRow | undefined;
  /** The current generation: read it before a query whose rows are then offered to `fill`. */
  readonly generation: number;
  /** Caches committed rows read by a query that started at `generation`, unless a change came in meanwhile. */
  fill(startedAt: number, rows: readonly TokenRow[]): void;
  /** A change made through this instance: dropped at once, before the caller's next request can read it. */
  invalidate(tenantId: string, ids: readonly string[]): void;
  invalidateTenant(tenantId: string): void;
  close(): Promise<void>;
}

/**
 * Committed token rows for detokenization, per instance, so a token used again (a card on file) costs no query.
 * Rows stay sealed here (the vault decrypts on each use), so the cache holds no plaintext. Only rows read without a
 * transaction are cached, and only committed ones (`transaction_id` null): what any reader without a transaction sees.
 *
 * Consistency: a delete or update through this instance drops the entry before the mutation answers; one anywhere else
 * (another instance, SQL by hand, a transaction commit) reaches every instance through the triggers of migration
 * 0006 and LISTEN/NOTIFY, a few milliseconds after it commits. A read that raced with a change is not cached
 * (generation check), so a stale row cannot be put back after its notification. `max: 0` turns the cache off.
 */
export async function createTokenCache(notifier: Notifier, log: Logger, options: { max: number }): Promise<TokenCache> {
  if (options.max <= 0) return disabledCache();
  // Keyed by token id alone (ids are UUIDv7 made by the gateway, unique across tenants); `get` checks the tenant.
  const byTenant = new Map<string, Set<string>>();
  const cache = new LRUCache<string, TokenRow>({
    max: options.max,
    ttl: TTL_MS,
    // Every way out of the cache (eviction, expiry, delete, clear) keeps the per-tenant index in step.
    dispose: (row, id) => {
      const ids = byTenant.get(row.tenant_id);
      ids?.delete(id);
      if (ids?.size === 0) byTenant.delete(row.tenant_id);
    },
  });
  let generation = 0;

  function onChange(payload: string): void {
    generation++;
    const ids = payload === '*' ? null : payload.split(',');
    if (ids?.some((id) => id.length !== 36)) log.warn('malformed token change notification; clearing the token cache');
    if (!ids || ids.some((id) => id.length !== 36)) cache.clear();
    else for (const id of ids) cache.delete(id);
  }

  const unlisten = await notifier.listen(CHANNEL, onChange);
  // Changes announced while the listening connection was down are lost: forget everything.
  const stopForgetting = notifier.onReconnect(() => onChange('*'));

  return {
    get(tenantId, id) {
      const row = cache.get(id);
      if (!row || row.tenant_id !== tenantId) return undefined;
      if (row.expires_at !== null && row.expires_at.getTime() - Date.now() <= EXPIRY_MARGIN_MS) return undefined;
      return row;
    },
    get generation() {
      return generation;
    },
    fill(startedAt, rows) {
      if (startedAt !== generation) return;
      for (const row of rows) {
        if (row.transaction_id !== null) continue;
        cache.set(row.id, row);
        const ids = byTenant.get(row.tenant_id) ?? new Set<string>();
        byTenant.set(row.tenant_id, ids);
        ids.add(row.id);
      }
    },
    invalidate(tenantId, ids) {
      generation++;
      // Keys are the stored, lower-case ids; a caller's may be written in upper case.
      for (const given of ids) {
        const id = given.toLowerCase();
        if (cache.peek(id)?.tenant_id === tenantId) cache.delete(id);
      }
    },
    invalidateTenant(tenantId) {
      generation++;
      for (const id of [...(byTenant.get(tenantId) ?? [])]) cache.delete(id);
    },
    async close() {
      stopForgetting();
      await unlisten();
    },
  };
}

function disabledCache(): TokenCache {
  return {
    get: () => undefined,
    generation: 0,
    fill: () => {},
    invalidate: () => {},
    invalidateTenant: () => {},
    close: async () => {},
  };
}
