import fc from 'fast-check';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock, EnqueueResult, QueueItemInput, SampleQueue } from '../../agent/queue/types.js';
import { agentCode, captureLogger, expectedBytes, fakeClock, sample, thrownCode } from './helpers.js';
import type { FakeClock } from './helpers.js';

export interface QueueFactoryOptions {
  quotaBytes: number;
  clock: Clock;
  logger?: Logger;
  droppedMemory?: number;
}

/** Builds a fresh, empty queue. The contract closes every queue it made after each test. */
export type MakeQueue = (opts: QueueFactoryOptions) => SampleQueue;

const LEASE_MS = 30_000;
/** Every sample() with the default blob and meta has this size; quotas are multiples of it. */
const UNIT = expectedBytes(sample('x', 0));

function ids(items: Array<{ id: string }>): string[] {
  return items.map((i) => i.id);
}

/**
 * The behaviour every {@link SampleQueue} implementation must have (docs/conventions.md rule 3).
 * Run it once per implementation.
 */
export function queueContract(name: string, makeQueue: MakeQueue): void {
  describe(`SampleQueue contract: ${name}`, () => {
    let open: SampleQueue[] = [];
    let clock: FakeClock;

    function make(quotaBytes = 1_000_000, logger?: Logger, droppedMemory?: number): SampleQueue {
      clock = fakeClock();
      const queue = makeQueue({ quotaBytes, clock, ...(logger ? { logger } : {}), ...(droppedMemory === undefined ? {} : { droppedMemory }) });
      open.push(queue);
      return queue;
    }

    afterEach(() => {
      for (const q of open) q.close();
      open = [];
    });

    describe('ordering', () => {
      it('leases the highest priority first', () => {
        const q = make();
        q.enqueueMany([sample('low', 0), sample('high-1', 9), sample('mid', 5), sample('high-2', 9)]);
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['high-1', 'high-2', 'mid', 'low']);
      });

      it('is FIFO within a priority, with increasing seq', () => {
        const q = make();
        const order = ['c', 'a', 'e', 'b', 'd'];
        for (const id of order) q.enqueue(sample(id, 3));
        const leased = q.lease(10, LEASE_MS);
        expect(ids(leased)).toEqual(order);
        const seqs = leased.map((i) => i.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(seqs.length);
      });

      it('returns what was stored: meta, blob, kind, size, createdAt, attempts', () => {
        const q = make();
        const explicit = sample('explicit', 4, { createdAt: 42, meta: { reason: 'drift', score: 0.9, note: 'ünïcode' } });
        const implicit = sample('implicit', 4, { blobBytes: 0 });
        delete implicit.blob;
        q.enqueueMany([explicit, implicit]);
        const [a, b] = q.lease(10, LEASE_MS);
        expect(a).toMatchObject({ id: 'explicit', kind: 'image', priority: 4, meta: explicit.meta, createdAt: 42, attempts: 0, bytes: expectedBytes(explicit) });
        expect(Buffer.from(a?.blob ?? []).equals(Buffer.from(explicit.blob ?? []))).toBe(true);
        expect(b).toMatchObject({ id: 'implicit', createdAt: clock.now(), bytes: expectedBytes(implicit) });
        expect(b?.blob).toBeUndefined();
      });

      it('keeps its own copy: mutating the input after enqueue changes nothing stored', () => {
        const q = make();
        const input = sample('m', 1, { meta: { reason: 'first' } });
        q.enqueue(input);
        (input.meta as { reason: string }).reason = 'changed';
        input.blob?.fill(0);
        const [item] = q.lease(1, LEASE_MS);
        expect(item?.meta).toEqual({ reason: 'first' });
        expect(item?.blob?.some((b) => b !== 0)).toBe(true);
      });
    });

    describe('leasing', () => {
      it('skips leased items, and expired leases come back', () => {
        const q = make();
        for (const id of ['a', 'b', 'c', 'd']) q.enqueue(sample(id, 2));
        expect(ids(q.lease(2, 1000))).toEqual(['a', 'b']);
        clock.advance(500);
        expect(ids(q.lease(10, 1000))).toEqual(['c', 'd']);
        expect(q.lease(10, 1000)).toEqual([]);
        clock.advance(499);
        expect(q.lease(10, 1000)).toEqual([]);
        clock.advance(1);
        expect(ids(q.lease(10, 1000))).toEqual(['a', 'b']);
      });

      it('stops at maxBytes in order, but always returns at least one item', () => {
        const q = make();
        for (const id of ['a', 'b', 'c']) q.enqueue(sample(id, 2));
        expect(ids(q.lease(10, LEASE_MS, { maxBytes: 2 * UNIT + 1 }))).toEqual(['a', 'b']);
        expect(ids(q.lease(10, LEASE_MS, { maxBytes: 1 }))).toEqual(['c']);
      });

      it('honours max, including 0', () => {
        const q = make();
        for (const id of ['a', 'b', 'c']) q.enqueue(sample(id, 2));
        expect(q.lease(0, LEASE_MS)).toEqual([]);
        expect(ids(q.lease(1, LEASE_MS))).toEqual(['a']);
      });

      it('release makes items eligible at once and counts the attempt', () => {
        const q = make();
        q.enqueueMany([sample('a', 5), sample('b', 5)]);
        expect(ids(q.lease(1, LEASE_MS))).toEqual(['a']);
        q.release(['a', 'unknown', 'b']); // b is not leased: its attempts must not move
        const again = q.lease(10, LEASE_MS);
        expect(again.map((i) => [i.id, i.attempts])).toEqual([
          ['a', 1],
          ['b', 0],
        ]);
        q.release(['a']);
        q.release(['a']); // a second release of the same lease is a no-op
        expect(q.lease(1, LEASE_MS)[0]?.attempts).toBe(2);
      });

      it('an expired lease behind running ones comes back first, in queue order', () => {
        const q = make();
        for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) q.enqueue(sample(id, 4));
        expect(ids(q.lease(2, 1000))).toEqual(['a', 'b']);
        clock.advance(500);
        expect(ids(q.lease(2, 1000))).toEqual(['c', 'd']);
        clock.advance(500); // a and b expire, c and d still run
        expect(ids(q.lease(10, 1000))).toEqual(['a', 'b', 'e', 'f']);
        clock.advance(500);
        expect(ids(q.lease(10, 1000))).toEqual(['c', 'd']);
      });

      it('a release in the middle of leased items makes just that one eligible, ahead of newer items', () => {
        const q = make();
        for (const id of ['a', 'b', 'c', 'd']) q.enqueue(sample(id, 4));
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['a', 'b', 'c', 'd']);
        q.enqueue(sample('e', 4));
        q.release(['c']);
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['c', 'e']);
        q.release(['a', 'd']);
        expect(ids(q.lease(1, LEASE_MS))).toEqual(['a']);
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['d']);
      });

      it('a zero-length lease leaves the item eligible at once', () => {
        const q = make();
        q.enqueueMany([sample('a', 1), sample('b', 1)]);
        expect(ids(q.lease(1, 0))).toEqual(['a']);
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['a', 'b']);
      });

      it('ignores an ack or release of a leased item that was evicted meanwhile', () => {
        const q = make(2 * UNIT);
        q.enqueueMany([sample('a', 1), sample('b', 1)]);
        expect(ids(q.lease(1, LEASE_MS))).toEqual(['a']);
        expect(ids(q.enqueue(sample('c', 1)).evicted)).toEqual(['a']);
        q.release(['a']);
        expect(q.ack(['a'])).toBe(0);
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['b', 'c']);
        expect(q.stats()).toMatchObject({ depth: 2, bytes: 2 * UNIT, ackedTotal: 0 });
      });

      it('leased items carry their meta as stored JSON too', () => {
        const q = make();
        const input = sample('j', 2, { meta: { sample_id: 'j', text: 'ünï "quoted"', n: [1, 2.5] } });
        q.enqueue(input);
        const [item] = q.lease(1, LEASE_MS);
        expect(item?.metaJson).toBe(JSON.stringify(input.meta));
        expect(item?.meta).toEqual(input.meta);
        expect(JSON.parse(JSON.stringify(item))).toMatchObject({ id: 'j', meta: input.meta });
      });

      it('rejects nonsense lease arguments', () => {
        const q = make();
        expect(thrownCode(() => q.lease(-1, LEASE_MS))).toBe(agentCode('INPUT_INVALID'));
        expect(thrownCode(() => q.lease(1.5, LEASE_MS))).toBe(agentCode('INPUT_INVALID'));
        expect(thrownCode(() => q.lease(1, -5))).toBe(agentCode('INPUT_INVALID'));
      });
    });

    describe('ack', () => {
      it('deletes, returns the count, ignores unknown ids and is idempotent', () => {
        const q = make();
        for (const id of ['a', 'b', 'c']) q.enqueue(sample(id, 1));
        q.lease(10, LEASE_MS);
        expect(q.ack(['a', 'b', 'nope', 'a'])).toBe(2);
        expect(q.ack(['a', 'b'])).toBe(0);
        expect(q.ack([])).toBe(0);
        const s = q.stats();
        expect(s.ackedTotal).toBe(2);
        expect(s.depth).toBe(1);
        expect(s.bytes).toBe(UNIT);
        expect(ids(q.lease(10, LEASE_MS))).toEqual([]); // c is still leased
      });
    });

    describe('duplicates', () => {
      it('an id already queued is a counted no-op', () => {
        const q = make();
        expect(q.enqueue(sample('a', 1))).toEqual({ accepted: true, duplicate: false, evicted: [] });
        expect(q.enqueue(sample('a', 7, { blobBytes: 5 }))).toEqual({ accepted: false, duplicate: true, evicted: [] });
        const s = q.stats();
        expect(s).toMatchObject({ depth: 1, bytes: UNIT, duplicatesTotal: 1, enqueuedTotal: 1 });
      });

      it('an id already delivered (acked) is a duplicate too', () => {
        const q = make();
        q.enqueue(sample('a', 1));
        q.ack(['a']);
        expect(q.enqueue(sample('a', 1)).duplicate).toBe(true);
        expect(q.stats()).toMatchObject({ depth: 0, duplicatesTotal: 1 });
      });

      it('duplicates inside one enqueueMany batch are detected', () => {
        const q = make();
        const results = q.enqueueMany([sample('a', 1), sample('b', 1), sample('a', 1)]);
        expect(results.map((r) => r.duplicate)).toEqual([false, false, true]);
        expect(q.stats().depth).toBe(2);
      });
    });

    describe('quota and eviction', () => {
      it('evicts the lowest priority first, oldest first within it', () => {
        const q = make(4 * UNIT);
        q.enqueueMany([sample('p5', 5), sample('p1-old', 1), sample('p1-new', 1), sample('p3', 3)]);
        expect(q.enqueue(sample('n4', 4)).evicted).toEqual([{ id: 'p1-old', priority: 1, bytes: UNIT }]);
        expect(ids(q.enqueue(sample('n2', 2)).evicted)).toEqual(['p1-new']);
        expect(ids(q.enqueue(sample('n3', 3)).evicted)).toEqual(['n2']);
        expect(ids(q.enqueue(sample('n3b', 3)).evicted)).toEqual(['p3']);
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['p5', 'n4', 'n3', 'n3b']);
        expect(q.stats()).toMatchObject({ depth: 4, bytes: 4 * UNIT, evictedTotal: 4, evictedBytesTotal: 4 * UNIT });
      });

      it('drops the oldest of the same priority to admit a new one (drop-oldest)', () => {
        const q = make(2 * UNIT);
        q.enqueueMany([sample('a', 2), sample('b', 2)]);
        expect(ids(q.enqueue(sample('c', 2)).evicted)).toEqual(['a']);
      });

      it('evicts as many as needed for a bigger item, and no more', () => {
        const q = make(4 * UNIT);
        q.enqueueMany([sample('a', 0), sample('b', 0), sample('c', 0), sample('d', 0)]);
        const big = sample('big', 1, { blobBytes: 100 + UNIT + 1 }); // just over two units
        const r = q.enqueue(big);
        expect(ids(r.evicted)).toEqual(['a', 'b', 'c']);
        expect(q.stats().bytes).toBe(UNIT + expectedBytes(big));
      });

      it('rejects a new item when only higher-priority items could make room, and counts it', () => {
        const { logger, lines } = captureLogger();
        const q = make(2 * UNIT, logger);
        q.enqueueMany([sample('a', 5), sample('b', 6)]);
        const r = q.enqueue(sample('low', 4));
        expect(r).toEqual({ accepted: false, duplicate: false, evicted: [], rejected: 'lower_priority_than_all' });
        expect(q.stats()).toMatchObject({ depth: 2, bytes: 2 * UNIT, evictedTotal: 1, evictedBytesTotal: UNIT, enqueuedTotal: 2 });
        expect(ids(q.lease(10, LEASE_MS))).toEqual(['b', 'a']);
        expect(lines.some((l) => l.component === 'queue' && l.id === 'low' && l.level === 40)).toBe(true);
      });

      it('keeps each drop on record with its reason, size, priority and time, readable in pages', () => {
        const q = make(2 * UNIT);
        q.enqueueMany([sample('a', 1), sample('b', 5)]);
        clock.advance(1_000);
        q.enqueue(sample('c', 3)); // evicts a
        q.enqueue(sample('d', 0)); // rejected: only higher priorities could make room
        const all = q.dropped();
        expect(all).toEqual([
          { ord: all[0]?.ord, id: 'a', priority: 1, bytes: UNIT, reason: 'evicted', at: clock.now() },
          { ord: (all[0]?.ord ?? 0) + 1, id: 'd', priority: 0, bytes: UNIT, reason: 'rejected', at: clock.now() },
        ]);
        expect(q.dropped({ limit: 1 }).map((d) => d.id)).toEqual(['a']);
        expect(q.dropped({ afterOrd: all[0]?.ord ?? 0 }).map((d) => d.id)).toEqual(['d']);
        expect(q.stats().droppedOnRecord).toBe(2);
      });

      it('keeps a bounded record: the newest drops, contiguous, never fewer than droppedMemory', () => {
        const keep = 300;
        const q = make(UNIT, undefined, keep);
        const total = 1_000;
        for (let i = 0; i <= total; i++) q.enqueue(sample(`s${i}`, 0)); // each evicts the previous one
        const record = q.dropped();
        expect(record.length).toBeGreaterThanOrEqual(keep);
        expect(record.length).toBeLessThan(2 * keep);
        expect(q.stats().droppedOnRecord).toBe(record.length);
        expect(q.stats().evictedTotal).toBe(total);
        // The newest drop is the last one, and the record has no holes.
        expect(record.at(-1)?.id).toBe(`s${total - 1}`);
        const first = Number(record[0]?.id.slice(1));
        expect(record.map((d) => d.id)).toEqual(Array.from({ length: record.length }, (_, i) => `s${first + i}`));
      });

      it('does not evict lower items for nothing when they cannot free enough', () => {
        const q = make(3 * UNIT);
        q.enqueueMany([sample('low', 1), sample('h1', 7), sample('h2', 7)]);
        const r = q.enqueue(sample('two-units', 3, { blobBytes: 100 + UNIT }));
        expect(r.rejected).toBe('lower_priority_than_all');
        expect(q.stats().depth).toBe(3);
        expect(ids(q.lease(10, LEASE_MS))).toContain('low');
      });

      it('logs each eviction with the component, the new item and the victims', () => {
        const { logger, lines } = captureLogger();
        const q = make(UNIT, logger);
        q.enqueue(sample('old', 0));
        q.enqueue(sample('new', 0));
        const line = lines.find((l) => l.id === 'new' && Array.isArray(l.evicted));
        expect(line).toMatchObject({ component: 'queue', evicted: [{ id: 'old', priority: 0, bytes: UNIT }], quotaBytes: UNIT });
      });

      it('refuses an item larger than the whole quota with QUEUE_ITEM_TOO_LARGE and stores nothing', async () => {
        const q = make(UNIT - 1);
        expect(thrownCode(() => q.enqueue(sample('big', 9)))).toBe(agentCode('QUEUE_ITEM_TOO_LARGE'));
        expect(thrownCode(() => q.enqueueMany([sample('ok', 9, { blobBytes: 1 }), sample('big', 9)]))).toBe(agentCode('QUEUE_ITEM_TOO_LARGE'));
        await expect(q.enqueueAsync(sample('big', 9))).rejects.toMatchObject({ code: agentCode('QUEUE_ITEM_TOO_LARGE') });
        expect(q.stats()).toMatchObject({ depth: 0, bytes: 0, evictedTotal: 0, enqueuedTotal: 0 });
      });

      it('keeps bytes within quota and counts every eviction over random sequences', () => {
        fc.assert(
          fc.property(
            fc.integer({ min: 1, max: 6 }),
            fc.array(fc.record({ priority: fc.integer({ min: 0, max: 9 }), blobBytes: fc.integer({ min: 0, max: 3 * 100 }), ack: fc.boolean() }), {
              maxLength: 25,
            }),
            (units, ops) => {
              const quota = units * UNIT;
              const q = make(quota);
              let accepted = 0;
              let evictedFromQueue = 0;
              let rejected = 0;
              let acked = 0;
              const dropped: Array<{ id: string; reason: string }> = [];
              ops.forEach((op, i) => {
                const input = sample(`s${i}`, op.priority, { blobBytes: op.blobBytes });
                if (expectedBytes(input) > quota) return;
                const r = q.enqueue(input);
                if (r.accepted) accepted += 1;
                if (r.rejected) {
                  rejected += 1;
                  dropped.push({ id: input.id, reason: 'rejected' });
                }
                evictedFromQueue += r.evicted.length;
                for (const v of r.evicted) dropped.push({ id: v.id, reason: 'evicted' });
                // Never a higher-priority item given up for a lower one.
                for (const v of r.evicted) expect(v.priority).toBeLessThanOrEqual(op.priority);
                if (op.ack) acked += q.ack(ids(q.lease(1, LEASE_MS)));
                const s = q.stats();
                expect(s.bytes).toBeLessThanOrEqual(quota);
                expect(s.evictedTotal).toBe(evictedFromQueue + rejected);
                // Conservation: every accepted item is still queued, acked, or counted as evicted.
                expect(s.depth).toBe(accepted - evictedFromQueue - acked);
                // Every drop is on record by id, in the order it happened.
                expect(q.dropped().map(({ id, reason }) => ({ id, reason }))).toEqual(dropped);
                expect(s.droppedOnRecord).toBe(s.evictedTotal);
              });
            },
          ),
          { numRuns: 25 },
        );
      });
    });

    describe('stats', () => {
      it('is empty and consistent on a new queue', () => {
        const q = make(12345);
        expect(q.stats()).toEqual({
          depth: 0,
          bytes: 0,
          quotaBytes: 12345,
          byPriority: {},
          evictedTotal: 0,
          evictedBytesTotal: 0,
          duplicatesTotal: 0,
          ackedTotal: 0,
          enqueuedTotal: 0,
          oldestCreatedAt: null,
          droppedOnRecord: 0,
        });
        expect(q.dropped()).toEqual([]);
      });

      it('bytes and depth agree with the items and with byPriority', () => {
        const q = make();
        const inputs = [
          sample('a', 0, { blobBytes: 10, createdAt: 500 }),
          sample('b', 9, { blobBytes: 2000, createdAt: 100 }),
          sample('c', 9, { blobBytes: 0, createdAt: 300 }),
          sample('d', 4, { blobBytes: 77, meta: { nested: { deep: [1, 2, 3] }, text: 'x'.repeat(50) } }),
        ];
        q.enqueueMany(inputs);
        const s = q.stats();
        const total = inputs.reduce((n, i) => n + expectedBytes(i), 0);
        expect(s.depth).toBe(inputs.length);
        expect(s.bytes).toBe(total);
        expect(s.byPriority).toEqual({
          0: { depth: 1, bytes: expectedBytes(inputs[0] as QueueItemInput) },
          4: { depth: 1, bytes: expectedBytes(inputs[3] as QueueItemInput) },
          9: { depth: 2, bytes: expectedBytes(inputs[1] as QueueItemInput) + expectedBytes(inputs[2] as QueueItemInput) },
        });
        expect(s.oldestCreatedAt).toBe(100);
        expect(s.enqueuedTotal).toBe(inputs.length);
        expect(q.lease(10, LEASE_MS).reduce((n, i) => n + i.bytes, 0)).toBe(total);
      });
    });

    describe('validation', () => {
      it('rejects malformed items with INPUT_INVALID and writes nothing of the batch', () => {
        const q = make();
        const bad: Array<Partial<QueueItemInput>> = [
          { ...sample('p10', 10) },
          { ...sample('frac', 1.5) },
          { ...sample('', 1) },
          { ...sample('nokind', 1), kind: '' },
          { ...sample('arr', 1), meta: [] as unknown as Record<string, unknown> },
          { ...sample('big', 1), meta: { n: 1n } },
        ];
        for (const item of bad) {
          expect(thrownCode(() => q.enqueueMany([sample('good', 1), item as QueueItemInput]))).toBe(agentCode('INPUT_INVALID'));
        }
        expect(q.stats().depth).toBe(0);
      });
    });

    describe('enqueueAsync (group commit)', () => {
      it('resolves every concurrent capture with its own result, in submission order', async () => {
        const q = make();
        const inputs = Array.from({ length: 50 }, (_, i) => sample(`g${i}`, 3));
        const results = await Promise.all([...inputs.map((i) => q.enqueueAsync(i)), q.enqueueAsync(sample('g7', 3))]);
        expect(results.slice(0, 50).every((r) => r.accepted)).toBe(true);
        expect(results[50]).toEqual({ accepted: false, duplicate: true, evicted: [] });
        expect(ids(q.lease(100, LEASE_MS))).toEqual(ids(inputs));
        expect(q.stats()).toMatchObject({ depth: 50, enqueuedTotal: 50, duplicatesTotal: 1 });
      });

      it('a bad item rejects only its own promise', async () => {
        const q = make();
        const settled = await Promise.allSettled([q.enqueueAsync(sample('a', 1)), q.enqueueAsync(sample('b', 99)), q.enqueueAsync(sample('c', 1))]);
        expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect(q.stats().depth).toBe(2);
      });

      it('applies eviction rules inside a batch', async () => {
        const q = make(2 * UNIT);
        const results: EnqueueResult[] = await Promise.all([q.enqueueAsync(sample('a', 1)), q.enqueueAsync(sample('b', 1)), q.enqueueAsync(sample('c', 2))]);
        expect(ids(results[2]?.evicted ?? [])).toEqual(['a']);
        expect(q.stats().bytes).toBeLessThanOrEqual(2 * UNIT);
      });

      it('close commits captures still waiting for their batch', async () => {
        const q = make();
        const pending = q.enqueueAsync(sample('late', 1));
        q.close();
        await expect(pending).resolves.toMatchObject({ accepted: true });
      });
    });

    describe('close', () => {
      it('is idempotent and later calls fail with STORAGE_FAILED', async () => {
        const q = make();
        q.close();
        q.close();
        expect(thrownCode(() => q.enqueue(sample('a', 1)))).toBe(agentCode('STORAGE_FAILED'));
        expect(thrownCode(() => q.lease(1, LEASE_MS))).toBe(agentCode('STORAGE_FAILED'));
        await expect(q.enqueueAsync(sample('a', 1))).rejects.toMatchObject({ code: agentCode('STORAGE_FAILED') });
      });
    });
  });
}
