import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/auth/rate-limit.ts';

describe('the per-application rate limiter', () => {
  function limiterAt(perSecond: number, burst: number) {
    const clock = { ms: 0 };
    return { clock, limiter: createRateLimiter({ perSecond, burst, now: () => clock.ms }) };
  }

  it('lets a burst through, then asks to wait until a request has refilled', () => {
    const { limiter } = limiterAt(2, 3);
    expect([1, 2, 3].map(() => limiter.take('app'))).toEqual([0, 0, 0]);
    expect(limiter.take('app')).toBe(1);
  });

  it('refills at the rate, never beyond the burst', () => {
    const { clock, limiter } = limiterAt(2, 3);
    for (let i = 0; i < 3; i++) limiter.take('app');
    clock.ms += 500; // one request's worth at 2/s
    expect(limiter.take('app')).toBe(0);
    expect(limiter.take('app')).toBeGreaterThan(0);
    clock.ms += 60_000;
    expect([1, 2, 3, 4].map(() => limiter.take('app'))).toEqual([0, 0, 0, 1]);
  });

  it('says how many whole seconds to wait at slow rates', () => {
    const { limiter } = limiterAt(0.1, 1);
    expect(limiter.take('app')).toBe(0);
    expect(limiter.take('app')).toBe(10);
  });

  it('keeps one bucket per application', () => {
    const { limiter } = limiterAt(1, 1);
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBe(1);
    expect(limiter.take('b')).toBe(0);
  });

  it('is off at 0 requests a second', () => {
    const { limiter } = limiterAt(0, 1);
    expect(Array.from({ length: 1000 }, () => limiter.take('app')).every((wait) => wait === 0)).toBe(true);
  });
});
