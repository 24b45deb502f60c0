import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideEviction } from '../../agent/queue/eviction.js';
import type { EvictionCandidate } from '../../agent/queue/eviction.js';

interface Queued extends EvictionCandidate {
  seq: number;
}

/** Eviction order as the queues produce it: priority ascending, then oldest (seq) first. */
function evictionOrder(items: Queued[]): Queued[] {
  return [...items].sort((a, b) => a.priority - b.priority || a.seq - b.seq);
}

const sum = (items: Array<{ bytes: number }>): number => items.reduce((n, i) => n + i.bytes, 0);

const arbItem = fc.record({ priority: fc.integer({ min: 0, max: 9 }), bytes: fc.integer({ min: 1, max: 500 }) });

describe('decideEviction', () => {
  it('a single decision is sound, minimal and never sacrifices a higher priority', () => {
    fc.assert(
      fc.property(fc.array(arbItem, { maxLength: 30 }), arbItem, fc.integer({ min: 1, max: 4000 }), (queued, incoming, quota) => {
        const candidates = evictionOrder(queued.map((q, seq) => ({ ...q, id: `q${seq}`, seq })));
        const usedBytes = sum(candidates);
        const d = decideEviction({ ...incoming, quotaBytes: quota, usedBytes, candidates });
        const needed = usedBytes + incoming.bytes - quota;

        if (incoming.bytes > quota) {
          expect(d.action).toBe('too_large');
          return;
        }
        if (d.action === 'admit') {
          // A prefix of the eviction order, all at or below the new item's priority.
          expect(d.evict).toEqual(candidates.slice(0, d.evict.length));
          for (const v of d.evict) expect(v.priority).toBeLessThanOrEqual(incoming.priority);
          expect(d.freedBytes).toBe(sum(d.evict));
          expect(usedBytes - d.freedBytes + incoming.bytes).toBeLessThanOrEqual(quota);
          // Minimal: one victim fewer would not have been enough.
          if (d.evict.length > 0) expect(d.freedBytes - (d.evict.at(-1)?.bytes ?? 0)).toBeLessThan(needed);
          else expect(needed).toBeLessThanOrEqual(0);
        } else {
          expect(d.action).toBe('reject');
          const evictable = sum(candidates.filter((c) => c.priority <= incoming.priority));
          expect(evictable).toBeLessThan(needed);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('over a sequence of enqueues: bytes stay within quota and every item that left is counted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.array(arbItem, { maxLength: 60 }), (quota, arrivals) => {
        let queue: Queued[] = [];
        let evictedCount = 0;
        let offered = 0;
        arrivals.forEach((item, seq) => {
          const d = decideEviction({ ...item, quotaBytes: quota, usedBytes: sum(queue), candidates: evictionOrder(queue) });
          if (d.action === 'too_large') return;
          offered += 1;
          if (d.action === 'reject') {
            evictedCount += 1; // the dropped newcomer counts as an eviction
            return;
          }
          for (const v of d.evict) expect(v.priority).toBeLessThanOrEqual(item.priority);
          const gone = new Set(d.evict.map((v) => v.id));
          queue = queue.filter((q) => !gone.has(q.id));
          evictedCount += d.evict.length;
          queue.push({ ...item, id: `a${seq}`, seq });
          expect(sum(queue)).toBeLessThanOrEqual(quota);
        });
        // Conservation: every item offered is either still queued or was counted as evicted.
        expect(queue.length + evictedCount).toBe(offered);
      }),
      { numRuns: 500 },
    );
  });

  it('reads candidates lazily and only as far as needed (a database cursor can be passed)', () => {
    let pulled = 0;
    function* cursor(): Generator<EvictionCandidate> {
      for (let i = 0; i < 1000; i++) {
        pulled += 1;
        yield { id: `c${i}`, priority: 0, bytes: 10 };
      }
    }
    const d = decideEviction({ priority: 5, bytes: 25, quotaBytes: 10_000, usedBytes: 10_000, candidates: cursor() });
    expect(d).toMatchObject({ action: 'admit', freedBytes: 30 });
    expect(pulled).toBe(3);

    pulled = 0;
    expect(decideEviction({ priority: 5, bytes: 25, quotaBytes: 10_000, usedBytes: 0, candidates: cursor() }).action).toBe('admit');
    expect(pulled).toBe(0);
  });

  it('admits at equal priority by dropping the oldest, rejects below', () => {
    const candidates = [
      { id: 'old', priority: 3, bytes: 10 },
      { id: 'new', priority: 3, bytes: 10 },
    ];
    expect(decideEviction({ priority: 3, bytes: 10, quotaBytes: 20, usedBytes: 20, candidates })).toEqual({
      action: 'admit',
      evict: [candidates[0]],
      freedBytes: 10,
    });
    expect(decideEviction({ priority: 2, bytes: 10, quotaBytes: 20, usedBytes: 20, candidates })).toEqual({
      action: 'reject',
      reason: 'lower_priority_than_all',
    });
  });
});
