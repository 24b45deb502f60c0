import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckedMemory } from '../../agent/queue/acked-memory.js';
import type { AckedBatch } from '../../agent/queue/acked-memory.js';

/** Drives an AckedMemory the way the queue does, with an in-memory stand-in for the table. */
function simulate(capacity: number, batches: string[][]): { memory: AckedMemory; rows: Map<number, string[]> } {
  const memory = new AckedMemory(capacity);
  const rows = new Map<number, string[]>();
  let nextOrd = 1;
  for (const ids of batches) {
    const plan = memory.plan(ids);
    let ord: number | undefined;
    if (plan.batchJson !== undefined) {
      ord = nextOrd++;
      rows.set(ord, JSON.parse(plan.batchJson) as string[]);
    }
    if (plan.pruneUpTo !== undefined) for (const key of [...rows.keys()]) if (key <= plan.pruneUpTo) rows.delete(key);
    memory.committed(ids, plan, ord);
  }
  return { memory, rows };
}

describe('AckedMemory', () => {
  it('keeps the last `capacity` ids, stores only the rows needed for them, and reloads the same set', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 6 }), { maxLength: 20 }),
        (capacity, raw) => {
          // Ids are unique per ack in the queue (each item is deleted once), so make them so.
          let n = 0;
          const batches = raw.map((b) => b.map(() => `id-${n++}`));
          const { memory, rows } = simulate(capacity, batches);
          const acked = batches.flat();
          const remembered = acked.filter((id) => memory.has(id));
          expect(remembered).toEqual(capacity === 0 ? [] : acked.slice(-capacity));

          // Stored rows: enough for `capacity` ids, never a row more than needed.
          const stored = [...rows.entries()].sort((a, b) => a[0] - b[0]);
          const storedCount = stored.reduce((s, [, ids]) => s + ids.length, 0);
          if (capacity === 0) expect(stored).toEqual([]);
          else {
            expect(storedCount).toBeGreaterThanOrEqual(Math.min(capacity, acked.length));
            if (stored.length > 0) expect(storedCount - (stored[0]?.[1].length ?? 0)).toBeLessThan(capacity);
          }

          // What a restart would rebuild from the stored rows.
          const reloaded = new AckedMemory(capacity);
          const batchesOnDisk: AckedBatch[] = stored.map(([ord, ids]) => ({ ord, count: ids.length }));
          reloaded.load(batchesOnDisk, () => stored.map(([, ids]) => JSON.stringify(ids)).reverse());
          expect(acked.filter((id) => reloaded.has(id))).toEqual(remembered);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('treats an id acked again as the newest', () => {
    const { memory } = simulate(2, [['a'], ['b'], ['a'], ['c']]);
    expect(['a', 'b', 'c'].filter((id) => memory.has(id))).toEqual(['a', 'c']);
  });
});
