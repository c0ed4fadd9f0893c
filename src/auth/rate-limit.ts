import { LRUCache } from 'lru-cache';

/**
 * The per-application rate limit (DESIGN.md section 10): a token bucket per application, `perSecond` requests a
 * second on average with bursts of up to `burst`. Every GraphQL request an application's key authenticates counts,
 * and so does every subscription it starts: HTTP, graphql-ws, and `req.bt` calls made by its formulas.
 *
 * Per instance, in memory: n instances behind a load balancer let an application through up to n times the rate.
 * A shared counter would put a database round trip on every request, which is most of what a cached `react` costs;
 * set the rate per instance accordingly. Buckets of applications not seen lately are dropped (LRU), which only
 * ever refills them.
 */
export interface RateLimiter {
  /** Takes one request from the application's bucket: 0 when it may proceed, else seconds until it may retry. */
  take(applicationId: string): number;
}

export interface RateLimitOptions {
  /** Average requests per second per application; 0 turns the limit off. */
  perSecond: number;
  /** Requests an idle application may make at once. */
  burst: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

const TRACKED_APPLICATIONS = 10_000;

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const { perSecond } = options;
  if (perSecond <= 0) return { take: () => 0 };
  const burst = Math.max(1, options.burst);
  const now = options.now ?? (() => performance.now());
  const buckets = new LRUCache<string, { tokens: number; at: number }>({ max: TRACKED_APPLICATIONS });
  return {
    take(applicationId) {
      const time = now();
      let bucket = buckets.get(applicationId);
      if (!bucket) {
        bucket = { tokens: burst, at: time };
        buckets.set(applicationId, bucket);
      }
      bucket.tokens = Math.min(burst, bucket.tokens + ((time - bucket.at) / 1000) * perSecond);
      bucket.at = time;
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return 0;
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
    },
  };
}
