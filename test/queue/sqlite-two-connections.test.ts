/**
 * Two connections on one queue file, as the agent runs it: the main thread enqueues on one,
 * the drain worker leases and acks on the other. Neither may trust what it cached in memory.
 */
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { expectedBytes, fakeClock, makeTempDir, sample } from './helpers.js';

let tmp: ReturnType<typeof makeTempDir>;
let producer: SampleQueue;
let drainer: SampleQueue;

function open(quotaBytes: number): void {
  const file = path.join(tmp.dir, 'queue.db');
  const clock = fakeClock();
  producer = openSqliteQueue({ path: file, quotaBytes, clock });
  drainer = openSqliteQueue({ path: file, quotaBytes, clock });
}

beforeEach(() => {
  tmp = makeTempDir('sqlite-two');
});
afterEach(() => {
  producer.close();
  drainer.close();
  tmp.remove();
});

describe('sqlite queue with a second connection acking', () => {
  it('bytes freed by the other connection make room: nothing is evicted that need not be', () => {
    const item = (i: number) => sample(`s-${i}`, 5, { blobBytes: 1000 });
    const per = expectedBytes(item(0));
    open(per * 4);
    producer.enqueueMany([0, 1, 2, 3].map(item));
    const leased = drainer.lease(2, 60_000);
    expect(drainer.ack(leased.map((i) => i.id))).toBe(2);
    // Two free slots on disk: two more fit without evicting anything.
    const results = producer.enqueueMany([4, 5].map(item));
    expect(results.every((r) => r.accepted && r.evicted.length === 0)).toBe(true);
    expect(producer.stats()).toMatchObject({ depth: 4, bytes: 4 * per });
    // Now full: the next one evicts exactly one (the oldest of the same priority).
    expect(producer.enqueue(item(6)).evicted.map((e) => e.id)).toEqual(['s-2']);
  });

  it('an id acked on the other connection is a duplicate here', () => {
    open(1e9);
    producer.enqueue(sample('a', 3));
    producer.enqueue(sample('b', 3));
    drainer.ack(drainer.lease(10, 60_000).map((i) => i.id));
    expect(producer.enqueue(sample('a', 3))).toMatchObject({ accepted: false, duplicate: true });
    expect(producer.enqueueMany([sample('b', 3), sample('c', 3)]).map((r) => r.duplicate)).toEqual([true, false]);
    expect(producer.stats()).toMatchObject({ depth: 1, ackedTotal: 2, duplicatesTotal: 2 });
  });

  it('the byte total survives a reopen after acks on both connections', () => {
    open(1e9);
    producer.enqueueMany(['a', 'b', 'c'].map((id) => sample(id, 1)));
    drainer.ack(['a']);
    producer.ack(['b']);
    producer.close();
    drainer.close();
    open(1e9);
    expect(producer.stats()).toMatchObject({ depth: 1, bytes: expectedBytes(sample('c', 1)) });
    // ...and admission agrees with stats: a quota of exactly two items admits one more without eviction.
    producer.close();
    drainer.close();
    open(2 * expectedBytes(sample('c', 1)));
    expect(producer.enqueue(sample('d', 1)).evicted).toEqual([]);
  });
});
