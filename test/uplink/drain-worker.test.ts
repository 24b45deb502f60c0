/**
 * The drain worker: a worker thread with its own connection to a real SQLite queue file,
 * beside the main thread's connection (as the agent runs it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { DrainWorker } from '../../agent/uplink/drain-worker.js';
import { systemClock } from '../../shared/ids.js';
import type { SampleMeta } from '../../shared/schemas/messages.js';
import { topics } from '../../shared/topics.js';
import { encodeSample } from '../../shared/wire/chunking.js';
import { sampleItem } from './fixtures/samples.js';

const DEVICE = 'dev-drain';
const topic = topics.samples(DEVICE);
const request = (max: number, maxMessageBytes = 128 * 1024) => ({ max, leaseMs: 60_000, maxBytes: 8 << 20, topic, maxMessageBytes });

let dir: string;
let queue: SampleQueue;
let worker: DrainWorker;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'edgeloop-drain-worker-'));
  const path = join(dir, 'queue.db');
  queue = openSqliteQueue({ path, quotaBytes: 1 << 30, clock: systemClock });
  worker = await DrainWorker.open({ path, quotaBytes: 1 << 30, synchronous: 'FULL' });
});
afterEach(async () => {
  await worker.close();
  queue.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('DrainWorker', () => {
  it('leases in queue order and hands over exactly the bytes encodeSample makes, chunked ones too', async () => {
    const items = [sampleItem('low', 500, 1, DEVICE), sampleItem('high', 500, 9, DEVICE), sampleItem('big', 200_000, 5, DEVICE)];
    queue.enqueueMany(items);
    const batch = await worker.lease(request(10));
    expect(batch.samples.map((s) => s.id)).toEqual(['high', 'big', 'low']);
    for (const s of batch.samples) {
      const item = items.find((i) => i.id === s.id)!;
      const expected = encodeSample(item.meta as unknown as SampleMeta, item.blob!, { topic });
      expect(s.messages.length).toBe(expected.length);
      s.messages.forEach((m, i) => expect(Buffer.compare(m, expected[i]!)).toBe(0));
    }
    expect(batch.samples.find((s) => s.id === 'big')!.messages.length).toBeGreaterThan(1);
    // Leased on the worker's connection: a second lease there skips them.
    expect((await worker.lease(request(10))).samples).toEqual([]);
  });

  it('deletes acked rows (seen from the main connection) and gives released ones back', async () => {
    queue.enqueueMany(['a', 'b', 'c', 'd'].map((id) => sampleItem(id, 100, 5, DEVICE)));
    const batch = await worker.lease(request(4));
    expect(await worker.ack(['a', 'b'])).toBe(2);
    expect(queue.stats()).toMatchObject({ depth: 2, ackedTotal: 2 });
    await worker.release(['c']);
    expect((await worker.lease(request(4))).samples.map((s) => s.id)).toEqual(['c']);
    expect(batch.samples).toHaveLength(4);
    // The main connection knows the acked ids: a re-capture is a duplicate.
    expect(queue.enqueue(sampleItem('a', 100, 5, DEVICE)).duplicate).toBe(true);
  });

  it('commits an ack sent before close, even when nobody waited for it', async () => {
    queue.enqueueMany(['a', 'b'].map((id) => sampleItem(id, 100, 5, DEVICE)));
    await worker.lease(request(2));
    void worker.ack(['a', 'b']);
    await worker.close();
    expect(queue.stats().depth).toBe(0);
    await expect(worker.lease(request(1))).rejects.toThrow(/closed/);
  });

  it('reports an item that is not a sample as unsendable and keeps its lease', async () => {
    queue.enqueue({ id: 'odd', kind: 'image', priority: 5, meta: { note: 'no sample_id' }, blob: Buffer.from('x') });
    const batch = await worker.lease(request(5));
    expect(batch.samples).toEqual([]);
    expect(batch.unsendable).toMatchObject([{ id: 'odd', kind: 'image' }]);
    expect(batch.unsendable[0]!.error.message).toMatch(/sample_id/);
    expect((await worker.lease(request(5))).unsendable).toEqual([]);
    expect(queue.stats().depth).toBe(1);
  });
});
