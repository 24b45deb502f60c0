import { describe, expect, it } from 'vitest';
import { nextDelay } from '../../agent/uplink/backoff.js';

const opts = { initialMs: 100, maxMs: 5000 };

describe('nextDelay (exponential backoff, full jitter)', () => {
  it('grows exponentially: the upper bound doubles per attempt', () => {
    const top = () => 0.999999;
    expect([0, 1, 2, 3, 4].map((a) => nextDelay(a, opts, top))).toEqual([99, 199, 399, 799, 1599]);
  });

  it('is capped at maxMs however many attempts failed', () => {
    const top = () => 0.999999;
    expect(nextDelay(6, opts, top)).toBe(4999);
    expect(nextDelay(60, opts, top)).toBe(4999);
    expect(nextDelay(5000, opts, top)).toBe(4999);
  });

  it('draws uniformly between the floor and the bound (full jitter)', () => {
    expect(nextDelay(3, opts, () => 0)).toBe(0);
    expect(nextDelay(3, opts, () => 0.5)).toBe(400);
    expect(nextDelay(3, { ...opts, minMs: 200 }, () => 0)).toBe(200);
    expect(nextDelay(3, { ...opts, minMs: 200 }, () => 0.5)).toBe(500);
  });

  it('stays within [minMs, bound) for any random draw', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    for (let attempt = 0; attempt < 20; attempt++) {
      const bound = Math.min(5000, 100 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const d = nextDelay(attempt, { ...opts, minMs: 50 }, random);
        expect(d).toBeGreaterThanOrEqual(50);
        expect(d).toBeLessThan(Math.max(bound, 51));
      }
    }
  });

  it('returns the floor when it is above the exponential bound', () => {
    expect(nextDelay(0, { initialMs: 1000, maxMs: 60_000, minMs: 1000 }, () => 0.7)).toBe(1000);
  });
});
