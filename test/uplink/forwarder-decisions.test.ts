/**
 * The forwarder's decisions under fake time, with an uplink the test drives: window, lane
 * priority, rate cap, leases given back on disconnect, when items are deleted.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryQueue } from '../../agent/queue/memory-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { queueSource } from '../../agent/uplink/backlog-source.js';
import type { BacklogSource, LeasedBatch } from '../../agent/uplink/backlog-source.js';
import { Forwarder } from '../../agent/uplink/forwarder.js';
import type { ForwarderOptions } from '../../agent/uplink/forwarder.js';
import { sampleMessage } from '../../shared/schemas/messages.js';
import { topics } from '../../shared/topics.js';
import { parseJsonWith } from '../../shared/validate.js';
import { FakeTime, settle } from './fixtures/fake-time.js';
import { captureLogger } from './fixtures/logger.js';
import { ManualUplink } from './fixtures/manual-uplink.js';
import { sampleItem } from './fixtures/samples.js';

const DEVICE = 'dev-1';

function setup(opts: Partial<ForwarderOptions> = {}, items = 10) {
  const time = new FakeTime();
  const queue: SampleQueue = createMemoryQueue({ quotaBytes: 64 * 1024 * 1024, clock: time });
  queue.enqueueMany(Array.from({ length: items }, (_, i) => sampleItem(`s-${String(i).padStart(3, '0')}`, 100, 5, DEVICE)));
  const uplink = new ManualUplink();
  const { logger, lines } = captureLogger();
  const forwarder = new Forwarder({ deviceId: DEVICE, queue, uplink, logger, clock: time, timers: time, pollMs: 1000, ackTimeoutMs: 10_000, ...opts });
  return { time, queue, uplink, forwarder, lines };
}

const sampleIdOf = (payload: Uint8Array) => parseJsonWith(sampleMessage, payload, 'INPUT_INVALID', 'sample').meta.sample_id;
const ack = (ids: string[]) => Buffer.from(JSON.stringify({ type: 'sample_ack', v: 1, sample_ids: ids }));

describe('Forwarder decisions', () => {
  it('keeps at most maxInflight publishes unacknowledged', async () => {
    const { uplink, forwarder } = setup({ limits: { publishesPerS: null, maxInflight: 3 } });
    await forwarder.start();
    await uplink.connect();
    await settle();
    expect(uplink.inflight()).toHaveLength(3);
    uplink.inflight()[0]?.ack();
    await settle();
    expect(uplink.inflight()).toHaveLength(3);
    expect(uplink.published).toHaveLength(4);
    expect(forwarder.stats().inflight).toBe(3);
  });

  it('sends a live message before the backlog as soon as a slot frees', async () => {
    const { uplink, forwarder } = setup({ limits: { publishesPerS: null, maxInflight: 2 } });
    await forwarder.start();
    await uplink.connect();
    await settle();
    forwarder.sendLive(topics.telemetry(DEVICE), Buffer.from('{"t":1}'));
    await settle();
    expect(uplink.published).toHaveLength(2); // window full: the live message waits for a slot, not the backlog
    uplink.inflight()[0]?.ack();
    await settle();
    expect(uplink.published[2]?.topic).toBe(topics.telemetry(DEVICE));
    expect(forwarder.stats().backlog).toBe(10);
  });

  it('paces publishes to the rate cap under fake time', async () => {
    const { uplink, forwarder, time } = setup({ limits: { publishesPerS: 10, publishBurst: 1, maxInflight: 100 } });
    await forwarder.start();
    await uplink.connect();
    await settle();
    expect(uplink.published).toHaveLength(1);
    time.advance(99);
    await settle();
    expect(uplink.published).toHaveLength(1);
    time.advance(1);
    await settle();
    expect(uplink.published).toHaveLength(2);
    time.advance(500);
    await settle();
    expect(uplink.published).toHaveLength(3); // one wake-up timer at a time: each fires, publishes, re-arms
    for (let i = 0; i < 10; i++) {
      time.advance(100);
      await settle();
    }
    expect(uplink.published).toHaveLength(10);
  });

  it('deletes nothing on PUBACK in fleet mode, and each sample on its fleet ack', async () => {
    const { uplink, forwarder, queue, time } = setup({ limits: { publishesPerS: null } }, 4);
    await forwarder.start();
    await uplink.connect();
    await settle();
    uplink.ackAll();
    await settle();
    expect(forwarder.stats()).toMatchObject({ sent: 4, acked: 0, awaiting_ack: 4, backlog: 4 });
    uplink.deliver(topics.acks(DEVICE), ack(['s-000', 's-002']));
    uplink.deliver(topics.acks(DEVICE), ack(['s-000'])); // a repeated ack is harmless
    time.advance(10); // deletions are batched into one transaction per ackBatchMs
    expect(forwarder.stats()).toMatchObject({ acked: 2, awaiting_ack: 2, backlog: 2 });
    expect(queue.stats().depth).toBe(2);
  });

  it('ignores a malformed ack and logs why', async () => {
    const { uplink, forwarder, lines } = setup({}, 1);
    await forwarder.start();
    await uplink.connect();
    uplink.deliver(topics.acks(DEVICE), Buffer.from('{"type":"sample_ack","v":1,"sample_ids":[]}'));
    await settle();
    expect(forwarder.stats().acked).toBe(0);
    expect(lines.some((l) => l.msg === 'ignoring malformed sample ack' && l.component === 'uplink')).toBe(true);
  });

  it('deletes on PUBACK in puback mode, batching deletions while the drain runs', async () => {
    const { uplink, forwarder, queue, time } = setup({ ackMode: 'puback', limits: { publishesPerS: null, maxInflight: 3 } }, 6);
    await forwarder.start();
    await uplink.connect();
    await settle();
    uplink.ackAll();
    await settle();
    expect(uplink.inflight()).toHaveLength(3); // the other three went out
    time.advance(9);
    expect(queue.stats().depth).toBe(6); // deletion waits for the batch timer (ackBatchMs, default 10)
    time.advance(1);
    expect(queue.stats().depth).toBe(3);
    expect(forwarder.stats()).toMatchObject({ sent: 3, acked: 3 });
  });

  it('deletes at once, without waiting for the batch timer, when the drain is over', async () => {
    const { uplink, forwarder, queue } = setup({ ackMode: 'puback', limits: { publishesPerS: null, maxInflight: 3 } }, 5);
    await forwarder.start();
    await uplink.connect();
    await settle();
    uplink.ackAll();
    await settle();
    expect(queue.stats().depth).toBe(5); // two more in flight: the batch keeps collecting
    uplink.ackAll();
    await settle();
    expect(queue.stats().depth).toBe(0); // nothing to send, nothing in flight: no timer wait
    expect(forwarder.stats()).toMatchObject({ sent: 5, acked: 5 });
  });

  it('gives back the leases of unsent samples on disconnect, so they go first after the reconnect', async () => {
    const { uplink, forwarder, queue } = setup({ limits: { publishesPerS: null, maxInflight: 2 } }, 6);
    await forwarder.start();
    await uplink.connect();
    await settle();
    const firstTwo = uplink.published.map((p) => sampleIdOf(p.payload));
    expect(firstTwo).toEqual(['s-000', 's-001']);
    uplink.down();
    await settle();
    // Nothing is held: everything is leasable at once.
    const leasable = queue.lease(100, 1000);
    expect(leasable.map((i) => i.id)).toEqual(['s-000', 's-001', 's-002', 's-003', 's-004', 's-005']);
    queue.release(leasable.map((i) => i.id));
    uplink.up();
    await settle();
    expect(uplink.published.slice(2).map((p) => sampleIdOf(p.payload))).toEqual(['s-000', 's-001']);
    // Only the two that were actually published count as resent, not the leased-but-unsent ones.
    uplink.ackAll();
    await settle();
    expect(uplink.published).toHaveLength(6);
    expect(forwarder.stats().resent).toBe(2);
  });

  it('resends a sample whose fleet ack did not come before the lease expired', async () => {
    const { uplink, forwarder, time } = setup({ limits: { publishesPerS: null }, ackTimeoutMs: 5000 }, 1);
    await forwarder.start();
    await uplink.connect();
    await settle();
    uplink.ackAll();
    await settle();
    expect(uplink.published).toHaveLength(1);
    time.advance(4000);
    await settle();
    expect(uplink.published).toHaveLength(1);
    time.advance(2000); // lease expired; the next poll leases it again
    await settle();
    expect(uplink.published).toHaveLength(2);
    expect(forwarder.stats().resent).toBe(1);
  });

  it('gives a live message cut off by a disconnect one more try after the reconnect', async () => {
    const { uplink, forwarder } = setup({ limits: { publishesPerS: null } }, 0);
    await forwarder.start();
    await uplink.connect();
    forwarder.sendLive('t/live', Buffer.from('x'));
    await settle();
    uplink.down();
    await settle();
    uplink.up();
    await settle();
    expect(uplink.published.map((p) => p.topic)).toEqual(['t/live', 't/live']);
    uplink.down();
    await settle();
    uplink.up();
    await settle();
    expect(uplink.published).toHaveLength(2);
    expect(forwarder.stats().live_failed).toBe(1);
  });

  it('leaves an item that is not a sample in the queue and logs it once', async () => {
    const { uplink, forwarder, queue, lines, time } = setup({ limits: { publishesPerS: null }, ackTimeoutMs: 1000 }, 0);
    queue.enqueue({ id: 'odd-1', kind: 'blob', priority: 1, meta: { note: 'no sample_id' }, blob: new Uint8Array(3) });
    await forwarder.start();
    await uplink.connect();
    await settle();
    time.advance(5000);
    await settle();
    expect(uplink.published).toHaveLength(0);
    expect(queue.stats().depth).toBe(1);
    expect(forwarder.stats().unsendable).toBeGreaterThanOrEqual(2);
    expect(lines.filter((l) => l.msg === 'queued item cannot be sent; left in the queue')).toHaveLength(1);
  });

  it('sends a sample whose meta does not start with sample_id, and refuses one whose sample_id is not the queue id', async () => {
    const { uplink, forwarder, queue } = setup({ limits: { publishesPerS: null } }, 0);
    const reordered = sampleItem('late-key', 10, 5, DEVICE);
    const { sample_id: sampleId, ...rest } = reordered.meta;
    queue.enqueue({ ...reordered, meta: { ...rest, sample_id: sampleId } });
    const other = sampleItem('wrong-id', 10, 4, DEVICE);
    queue.enqueue({ ...other, meta: { ...other.meta, sample_id: 'someone-else' } });
    await forwarder.start();
    await uplink.connect();
    await settle();
    expect(uplink.published.map((p) => sampleIdOf(p.payload))).toEqual(['late-key']);
    expect(forwarder.stats().unsendable).toBe(1);
  });

  it('looks at the queue again at once on notify()', async () => {
    const { uplink, forwarder, queue } = setup({ limits: { publishesPerS: null } }, 0);
    await forwarder.start();
    await uplink.connect();
    await settle();
    queue.enqueue(sampleItem('late-1', 10, 5, DEVICE));
    await settle();
    expect(uplink.published).toHaveLength(0); // idle until the poll...
    forwarder.notify();
    await settle();
    expect(uplink.published).toHaveLength(1); // ...or a notify
  });

  it('releases unsent leases on stop()', async () => {
    const { uplink, forwarder, queue } = setup({ limits: { publishesPerS: null, maxInflight: 1 } }, 3);
    await forwarder.start();
    await uplink.connect();
    await settle();
    forwarder.stop();
    expect(queue.lease(10, 1000)).toHaveLength(3);
  });
});

describe('Forwarder lease sizing', () => {
  it('leases no more than the bandwidth cap can send within half a lease', async () => {
    // 2 KB/s and a 10 s lease: 10 KB of wire bytes per lease, 7.5 KB of queue bytes (base64 grows 4/3).
    const { uplink, forwarder, queue } = setup({ limits: { publishesPerS: null, bytesPerS: 2000, maxInflight: 100 }, ackTimeoutMs: 10_000 }, 50);
    const itemBytes = queue.stats().bytes / 50;
    await forwarder.start();
    await uplink.connect();
    await settle();
    const leasedNow = 50 - queue.lease(100, 1).length;
    expect(leasedNow).toBeGreaterThan(0);
    expect(leasedNow * itemBytes).toBeLessThanOrEqual(7500);
  });

  it('leases no more than the rate cap can send within half a lease', async () => {
    // 4 publishes/s and a 10 s lease: 20 items per lease.
    const { uplink, forwarder, queue } = setup({ limits: { publishesPerS: 4, maxInflight: 100 }, ackTimeoutMs: 10_000 }, 50);
    await forwarder.start();
    await uplink.connect();
    await settle();
    expect(50 - queue.lease(100, 1).length).toBe(20);
  });
});

/**
 * A source that answers later, as the drain worker does: every lease waits until the test
 * lets it land, so what the forwarder does meanwhile can be checked.
 */
function deferredSource(queue: SampleQueue) {
  const inner = queueSource(queue);
  const waiting: Array<() => void> = [];
  const leases: number[] = [];
  const source: BacklogSource = {
    lease: (req) =>
      new Promise<LeasedBatch>((resolve) => {
        leases.push(req.max);
        // Leased now (as the worker leases when the request reaches it), handed over when released.
        const batch = inner.lease(req) as LeasedBatch;
        waiting.push(() => resolve(batch));
      }),
    ack: (ids) => Promise.resolve(inner.ack(ids) as number),
    release: (ids) => Promise.resolve(inner.release(ids)),
  };
  return { source, leases, land: () => waiting.splice(0).forEach((f) => f()) };
}

describe('Forwarder with an asynchronous source (the drain worker)', () => {
  it('publishes once the lease lands, asks for the next batch ahead, and deletes on PUBACK', async () => {
    const time = new FakeTime();
    const queue: SampleQueue = createMemoryQueue({ quotaBytes: 64 * 1024 * 1024, clock: time });
    queue.enqueueMany(Array.from({ length: 30 }, (_, i) => sampleItem(`s-${String(i).padStart(3, '0')}`, 100, 5, DEVICE)));
    const { source, leases, land } = deferredSource(queue);
    const uplink = new ManualUplink();
    const { logger } = captureLogger();
    const forwarder = new Forwarder({ deviceId: DEVICE, queue, source, uplink, logger, clock: time, timers: time, ackMode: 'puback', leaseBatch: 10, limits: { publishesPerS: null, maxInflight: 4 } });
    await forwarder.start();
    await uplink.connect();
    await settle();
    expect(uplink.published).toHaveLength(0); // nothing to send until the lease lands
    expect(leases).toEqual([10]);
    land();
    await settle();
    expect(uplink.published).toHaveLength(4);
    // Ten ready, and the lookahead asks for more before they run out, a few batches at most.
    expect(leases.length).toBeGreaterThan(1);
    expect(leases.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(40);
    for (const p of uplink.inflight()) p.ack();
    await settle();
    time.advance(20); // the ack batch timer
    await settle();
    await forwarder.acksSettled();
    expect(forwarder.stats().acked).toBe(4);
    expect(queue.stats().depth).toBe(26);
    forwarder.stop();
  });

  it('gives back a batch that lands after the connection dropped, rather than holding its leases', async () => {
    const time = new FakeTime();
    const queue: SampleQueue = createMemoryQueue({ quotaBytes: 64 * 1024 * 1024, clock: time });
    queue.enqueueMany(Array.from({ length: 5 }, (_, i) => sampleItem(`s-${i}`, 100, 5, DEVICE)));
    const { source, land } = deferredSource(queue);
    const uplink = new ManualUplink();
    const { logger } = captureLogger();
    const forwarder = new Forwarder({ deviceId: DEVICE, queue, source, uplink, logger, clock: time, timers: time, limits: { publishesPerS: null } });
    await forwarder.start();
    await uplink.connect();
    await settle();
    uplink.down();
    land();
    await settle();
    expect(uplink.published).toHaveLength(0);
    // Released at once: all five are leasable again (a held lease would hide them for ackTimeoutMs).
    expect(queue.lease(10, 1000)).toHaveLength(5);
    forwarder.stop();
  });
});
