import { describe, expect, it } from 'vitest';
import { PublishLimiter, TokenBucket, WAIT_FOR_SLOT } from '../../agent/uplink/limits.js';

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TokenBucket', () => {
  it('allows a burst, then refills at the rate', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerS: 10, burst: 3 }, clock);
    expect([bucket.tryTake(1), bucket.tryTake(1), bucket.tryTake(1)]).toEqual([0, 0, 0]);
    expect(bucket.tryTake(1)).toBe(100);
    clock.advance(90);
    expect(bucket.tryTake(1)).toBe(10);
    clock.advance(10);
    expect(bucket.tryTake(1)).toBe(0);
  });

  it('never exceeds burst + rate * T over a window of T', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerS: 100, burst: 10 }, clock);
    let taken = 0;
    for (let ms = 0; ms < 1000; ms++) {
      while (bucket.tryTake(1) === 0) taken++;
      clock.advance(1);
    }
    expect(taken).toBeLessThanOrEqual(110);
    expect(taken).toBeGreaterThanOrEqual(100);
  });

  it('does not store more than the burst while idle', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerS: 10, burst: 2 }, clock);
    clock.advance(60_000);
    expect([bucket.tryTake(1), bucket.tryTake(1)]).toEqual([0, 0]);
    expect(bucket.tryTake(1)).toBeGreaterThan(0);
  });

  it('lets a request larger than the burst through when full, then charges the debt', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket({ ratePerS: 1000, burst: 100 }, clock);
    expect(bucket.tryTake(500)).toBe(0);
    // 400 tokens of debt plus one more token: 401 ms at 1000/s.
    expect(bucket.tryTake(1)).toBe(401);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new TokenBucket({ ratePerS: 0, burst: 1 }, fakeClock())).toThrow(RangeError);
  });
});

describe('PublishLimiter', () => {
  it('defaults to 100 publishes/s with a burst of 10 and a window of 50', () => {
    const clock = fakeClock();
    const limiter = new PublishLimiter({}, clock);
    let n = 0;
    while (limiter.tryAcquire(10) === 0) n++;
    expect(n).toBe(10);
    expect(limiter.maxInflight).toBe(50);
  });

  it('enforces the in-flight window until publishes settle', () => {
    const clock = fakeClock();
    const limiter = new PublishLimiter({ publishesPerS: null, maxInflight: 3 }, clock);
    expect([limiter.tryAcquire(1), limiter.tryAcquire(1), limiter.tryAcquire(1)]).toEqual([0, 0, 0]);
    expect(limiter.tryAcquire(1)).toBe(WAIT_FOR_SLOT);
    limiter.settle();
    expect(limiter.inflight()).toBe(2);
    expect(limiter.tryAcquire(1)).toBe(0);
  });

  it('caps bandwidth in bytes per second', () => {
    const clock = fakeClock();
    const limiter = new PublishLimiter({ publishesPerS: null, bytesPerS: 10_000, bytesBurst: 2000, maxInflight: 1000 }, clock);
    expect(limiter.tryAcquire(1500)).toBe(0);
    expect(limiter.tryAcquire(1500)).toBe(100);
    clock.advance(100);
    expect(limiter.tryAcquire(1500)).toBe(0);
  });

  it('takes nothing from one budget when another refuses', () => {
    const clock = fakeClock();
    const limiter = new PublishLimiter({ publishesPerS: 10, publishBurst: 1, bytesPerS: 1000, bytesBurst: 100, maxInflight: 10 }, clock);
    expect(limiter.tryAcquire(100)).toBe(0);
    clock.advance(100); // the rate refilled one publish, the bandwidth 100 bytes
    expect(limiter.tryAcquire(200)).toBe(0); // allowed: bucket full, bigger than burst
    clock.advance(100); // rate refilled; bandwidth still 0 (-100 + 100)
    expect(limiter.tryAcquire(50)).toBeGreaterThan(0);
    expect(limiter.inflight()).toBe(2);
    // The refused attempt took no publish token: once bandwidth returns, it goes at once.
    clock.advance(50);
    expect(limiter.tryAcquire(50)).toBe(0);
  });
});
